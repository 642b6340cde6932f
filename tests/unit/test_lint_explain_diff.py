"""lint --explain (effective permissions of a subject) and lint --diff (what a change grants)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gatekeeper.cli import main

V1 = '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":%s}'
OLD = (
    "\n".join(
        [
            '{"user":"alice","resource":"pods","readonly":true}',
            V1 % '{"group":"dev","namespace":"team-a","resource":"deployments","apiGroup":"apps"}',
            V1 % '{"user":"bob","readonly":true,"nonResourcePath":"/version"}',
        ]
    )
    + "\n"
)
NEW = (
    "\n".join(
        [
            '{"user":"alice","resource":"pods","readonly":true}',
            V1 % '{"group":"dev","namespace":"*","resource":"deployments","apiGroup":"apps"}',
            '{"user":"bob","readonly":true}',
        ]
    )
    + "\n"
)


def test_explain_lists_each_grant_with_its_line(tmp_path: Path, capsys: Any) -> None:
    policy = tmp_path / "abac.jsonl"
    policy.write_text(OLD)
    assert main(["lint", "--explain", "alice", "--group", "dev", str(policy)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "VERBS",
        "APIGROUP",
        "RESOURCE",
        "NAMESPACE",
        "NON-RESOURCE",
        "PATH",
        "GRANTED",
        "BY",
    ]
    assert lines[1].split() == ["get,", "list,", "watch", "*", "pods", "*", f"{policy}:1"]
    assert lines[2].split() == ["*", "apps", "deployments", "team-a", f"{policy}:2"]
    assert len(lines) == 3  # bob's line is not alice's


def test_diff_shows_added_and_removed_grants_per_subject(tmp_path: Path, capsys: Any) -> None:
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    old.write_text(OLD)
    new.write_text(NEW)
    assert main(["lint", "--diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert out == (
        "group dev:\n"
        f"  + {new}:2: every verb on deployments (apps group) in every namespace\n"
        "      e.g. other-user in group dev: create deployments.apps in namespace other-namespace\n"
        f"  - {old}:2: every verb on deployments (apps group) in team-a  (still allowed by {new}:2)\n"
        "user bob:\n"
        f"  + {new}:3: get, list, watch on * (* group) in every namespace; get, list, watch on path *\n"
        "      e.g. bob: get other-resource.other-api-group in namespace other-namespace\n"
        f"  - {old}:3: get, list, watch on path /version  (still allowed by {new}:3)\n"
    )


def test_diff_of_identical_policies(tmp_path: Path, capsys: Any) -> None:
    old = tmp_path / "old.jsonl"
    old.write_text(OLD)
    assert main(["lint", "--diff", str(old), str(old)]) == 0
    assert capsys.readouterr().out == "no change in what the policy grants\n"
