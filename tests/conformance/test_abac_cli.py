"""Every ABAC conformance case through `gatekeeper authorize` (the CLI entry point, real files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.cli import main
from tests.conformance.abac_corpus import BAD_POLICIES, CASES, params, policy_bytes


def _authorize(tmp_path: Path, policy: bytes, review: dict[str, Any], capsys: Any) -> tuple[int, str, str]:
    policy_file = tmp_path / "abac.jsonl"
    policy_file.write_bytes(policy)
    review_file = tmp_path / "review.json"
    review_file.write_text(json.dumps(review))
    code = main(["authorize", "--authorization-policy-file", str(policy_file), str(review_file)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    code, out, err = _authorize(tmp_path, policy_bytes(case), case["request"], capsys)
    assert code == 0, err
    (line,) = out.splitlines()
    status = json.loads(line)["status"]
    assert status["allowed"] is case["expect_allowed"]
    assert "denied" not in status  # no match is "no opinion", never a denial
    if case["expect_allowed"]:
        assert status["reason"].startswith(f"{tmp_path / 'abac.jsonl'}:")
    else:
        assert status["reason"] == "No policy matched."


@pytest.mark.parametrize("case", params(BAD_POLICIES))
def test_bad_policy(case: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    review = CASES[0]["request"]
    code, out, err = _authorize(tmp_path, policy_bytes(case), review, capsys)
    assert code != 0
    assert out == ""
    policy_file = tmp_path / "abac.jsonl"
    if case["line"] is None:
        assert f"{policy_file}: " in err
    else:
        assert f"{policy_file}:{case['line']}: " in err


def test_json_lines_in_input_order_through_the_installed_command(tmp_path: Path) -> None:
    """The console script itself, with several reviews as JSON lines on stdin."""
    allowed = next(c for c in CASES if c["expect_allowed"])
    policy_file = tmp_path / "abac.jsonl"
    policy_file.write_bytes(policy_bytes(allowed))
    denied = {
        **allowed["request"],
        "spec": {**allowed["request"]["spec"], "user": "nobody-at-all", "groups": []},
    }
    stdin = "\n".join(json.dumps(r) for r in (allowed["request"], denied, allowed["request"])) + "\n"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatekeeper.cli",
            "authorize",
            "--authorization-policy-file",
            str(policy_file),
            "-",
        ],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line)["status"]["allowed"] for line in result.stdout.splitlines()]
    assert answers == [True, False, True]
