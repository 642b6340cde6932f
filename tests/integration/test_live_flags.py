"""`serve --kubeconfig` refuses what cannot work with one clear line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_admission_server import policy_args

CASES = {
    "no such kubeconfig": (["--kubeconfig", "nope.kubeconfig"], "--kubeconfig nope.kubeconfig: no such file"),
    "not a kubeconfig": (["--kubeconfig", "abac.jsonl"], "--kubeconfig abac.jsonl: "),
    "state with kubeconfig": (
        ["--kubeconfig", "abac.jsonl", "--state", "abac.jsonl"],
        "--state and --store go with",
    ),
    "store with kubeconfig": (
        ["--kubeconfig", "abac.jsonl", "--store", "memory://"],
        "--state and --store go with",
    ),
    "quota controller standalone": (["--quota-controller"], "--quota-controller recounts a live cluster"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_live_state_flag_that_cannot_work_is_one_clear_line(case: str, tmp_path: Path) -> None:
    args, expected = CASES[case]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatekeeper.cli",
            "serve",
            "--cert-dir",
            str(tmp_path / "certs"),
            "--secure-port",
            "0",
            *policy_args(tmp_path),
            *args,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
