"""The bounded file fuzz pass CI runs: every file kind through its loader, and a few through a
real server's reload (tests/fuzz/files.py; the long run is in README, Fuzzing).

A failure prints the input number: `python -m tests.fuzz.files --replay N --kinds KIND` loads that
input alone and shows the outcome.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.files import FileReport, fuzz_files, fuzz_reload

COUNT = 120  # per kind
RELOADS = 12

# Known on main when this was written; strict, so a fix shows up as XPASS and the mark must go.
KNOWN: dict[str, str] = {}
KINDS = ["policy", "token", "basic", "manifests", "client-ca", "tls-cert", "tls-key", "kubeconfig"]


def _clean(report: FileReport) -> None:
    summary = report.summary()
    print(f"\n{summary['inputs']} files in {summary['seconds']}s: {summary['outcomes']}")
    assert summary["first_failures"] == []


@pytest.mark.parametrize(
    "kind",
    [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=KNOWN[k])) if k in KNOWN else k
     for k in KINDS],
)
def test_each_file_kind_loads_or_is_refused_naming_the_file(tmp_path: Path, kind: str) -> None:
    report = fuzz_files(tmp_path, seed=1, start=0, count=COUNT, chosen=[kind])
    assert report.inputs == COUNT
    assert {f"{kind} loaded", f"{kind} refused"} <= set(report.outcomes)  # good and bad files both made
    _clean(report)


def test_bad_files_through_a_real_reload_keep_the_last_good_version(tmp_path: Path) -> None:
    report = fuzz_reload(tmp_path, seed=1, start=0, count=RELOADS)
    assert report.inputs == RELOADS
    assert any(outcome.endswith("refused") for outcome in report.outcomes)
    _clean(report)
