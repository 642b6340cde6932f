"""The bounded fuzz passes CI runs: the HTTP run against one real server, and the in-process run.

Bounded by count and by time (whichever ends first), so each pass stays well under a minute on a
busy CI machine; the long runs are in docs/operations-hardening.md (Fuzzing). A failure prints the
input number: `python -m tests.fuzz.http --replay N` (or tests.fuzz.inproc) sends that input alone
and shows the answer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fuzz.http import fuzz, server_problems
from tests.fuzz.inproc import fuzz_range
from tests.fuzz.inputs import Report, make, seeds, server_args
from tests.support.server import running_server

COUNT = 3000
SECONDS = 30.0
INPROC_COUNT = 3000


def _assert_clean(report: Report, least: int) -> None:
    summary = report.summary()
    print(f"\n{summary['inputs']} inputs in {summary['seconds']}s, {summary['statuses']}")
    assert report.inputs >= least  # the pass really ran
    assert (summary["5xx"], summary["hangs"], summary["first_tracebacks"]) == (0, 0, [])
    assert summary["first_failures"] == []


def test_mutated_requests_never_get_a_5xx_a_traceback_or_no_answer(tmp_path: Path) -> None:
    with running_server(tmp_path, server_args(tmp_path)) as server:
        report = fuzz(server, COUNT, SECONDS, seed=1)
        report.tracebacks = server_problems(server)
    _assert_clean(report, min(COUNT, 200))


def test_the_in_process_run_reaches_every_route_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # serve's relative paths (store, audit log) resolve in its directory
    report = asyncio.run(fuzz_range(tmp_path, seed=1, start=0, count=INPROC_COUNT, concurrency=8, quiet=True))
    _assert_clean(report, INPROC_COUNT)
    routes = set(report.routes)
    assert {"/authorize", "/authenticate", "/mutate", "/validate", "/admit", "/healthz", "/readyz",
            "/metrics", "/quota", "/openapi.json", "other"} <= routes


def test_the_same_seed_gives_the_same_inputs() -> None:
    corpus = seeds()
    first = [make(7, i, corpus) for i in range(200)]
    again = [make(7, i, corpus) for i in range(200)]
    assert first == again
    assert len({(r.method, r.target, r.query, r.headers, r.body) for r in first}) > 180
