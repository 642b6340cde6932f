"""The bounded fuzz pass CI runs: mutated conformance requests against one real server.

Bounded by count and by time (whichever ends first), so the pass stays well under a minute on a
busy CI machine; the long run is in docs/operations-hardening.md (Fuzzing). A failure prints the
input number: `python -m tests.fuzz.http --replay N` sends that input alone and shows the answer.
"""

from __future__ import annotations

import random
from pathlib import Path

from tests.fuzz.http import fuzz, seeds, server_args, server_problems
from tests.fuzz.mutations import mutate
from tests.support.server import running_server

COUNT = 3000
SECONDS = 30.0


def test_mutated_requests_never_get_a_5xx_a_traceback_or_no_answer(tmp_path: Path) -> None:
    with running_server(tmp_path, server_args(tmp_path)) as server:
        report = fuzz(server, COUNT, SECONDS, seed=1)
        problems = server_problems(server)
    summary = report.summary()
    print(f"\nmutation fuzz: {summary['inputs']} inputs in {summary['seconds']}s, {summary['statuses']}")
    assert report.inputs >= min(COUNT, 200)  # the pass really ran
    assert summary["failures"] == []
    assert problems == []


def test_the_same_seed_gives_the_same_inputs() -> None:
    doc = seeds()[0].doc
    first = [mutate(doc, random.Random(f"7:{i}")) for i in range(50)]
    again = [mutate(doc, random.Random(f"7:{i}")) for i in range(50)]
    assert first == again
    assert len({body for _, body in first}) > 40
