"""`gatekeeper audit` on mutated dumps: fields deleted, types swapped, bytes flipped, invalid
UTF-8, truncation, deep nesting. Every input ends in a report (0/1) or a named error (2), never
a traceback, and a Secret's data never shows."""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import pytest

from gatekeeper.cli import main
from tests.fuzz.mutations import mutate
from tests.support.cluster_dump import SECRET_VALUE, generate

COUNT = 200


def run(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["audit", str(path), "--format", "json"])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("chunk", range(4))
def test_mutated_dumps_get_a_report_or_a_named_error(tmp_path: Path, chunk: int) -> None:
    doc = generate(namespaces=10, pods_per_namespace=2, seed=chunk, gone_pods=1).document()
    path = tmp_path / "dump.json"
    for i in range(chunk * COUNT // 4, (chunk + 1) * COUNT // 4):
        label, body = mutate(doc, random.Random(f"audit:{i}"))
        path.write_bytes(body)
        code, out, err = run(path)
        assert code in (0, 1, 2), (i, label)
        if code == 2:
            assert err.startswith("gatekeeper audit: ") and out == "", (i, label, err)
        else:
            json.loads(out)
        assert SECRET_VALUE not in out + err, (i, label)
