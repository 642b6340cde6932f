"""Hypothesis draws new random examples on every local run. Under CI (CI=true) it draws the same
derandomized examples every time, so whether a commit lands never hinges on a lucky draw; the
long fuzz runs (docs/operations-hardening.md, "Fuzzing") are where new inputs are explored."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")
