"""Hypothesis draws new random examples on every local run. Under CI (CI=true) it draws the same
derandomized examples every time, so whether a commit lands never hinges on a lucky draw; the
long fuzz runs (docs/operations-hardening.md, "Fuzzing") are where new inputs are explored."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


@pytest.fixture(scope="session", autouse=True)
def _session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same for what session fixtures start (the e2e control plane's gatekeeper) before any test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GATEKEEPER_DATA_DIR", str(tmp_path_factory.mktemp("session-data")))
        yield


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's own gatekeeper data directory (certs/, gatekeeper.db): a test that runs serve or an
    offline command without --data-dir never reads or writes the user's ~/.local/share/gatekeeper,
    nor another test's state. Subprocesses inherit the variable."""
    monkeypatch.setenv("GATEKEEPER_DATA_DIR", str(tmp_path_factory.mktemp("data")))
