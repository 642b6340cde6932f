"""`gatekeeper who-can`: the subjects a policy names for a request, and the credential files' users
decided in full, each with the line that lets them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.evaluator import load_evaluator

V1 = "abac.authorization.kubernetes.io/v1beta1"
SPECS = [
    {"user": "alice", "namespace": "*", "resource": "*", "apiGroup": "*"},
    {"group": "dev", "namespace": "team-a", "resource": "pods"},
    {"user": "*", "readonly": True, "namespace": "*", "resource": "pods"},
    {"user": "bob", "namespace": "team-a", "resource": "deployments", "apiGroup": "apps"},
    {"group": "ops", "readonly": True, "nonResourcePath": "/metrics"},
]
TOKENS = 'tok-carol,carol,uid-c,"dev,qa"\ntok-dave,dave,uid-d\ntok-erin,erin,uid-e,ops\n'


def who_can(tmp_path: Path, *args: str) -> tuple[int, Any, str]:
    policy, tokens = tmp_path / "abac.jsonl", tmp_path / "tokens.csv"
    policy.write_text(
        "".join(json.dumps({"apiVersion": V1, "kind": "Policy", "spec": s}) + "\n" for s in SPECS)
    )
    tokens.write_text(TOKENS)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatekeeper.cli",
            "who-can",
            *args,
            "--authorization-policy-file",
            str(policy),
            "--token-auth-file",
            str(tokens),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, json.loads(done.stdout) if done.returncode == 0 else None, done.stderr


def test_a_write_names_only_the_rules_that_allow_writes(tmp_path: Path) -> None:
    code, report, _ = who_can(tmp_path, "create", "pods", "-n", "team-a")
    assert code == 0
    policy = tmp_path / "abac.jsonl"
    assert report["grants"] == [
        {"subject": "user alice", "source": f"{policy}:1"},
        {"subject": "group dev", "source": f"{policy}:2"},
    ]
    assert [(u["user"], u["grantedBy"]) for u in report["knownUsers"]] == [("carol", f"{policy}:2")]


def test_known_users_agree_with_the_evaluator(tmp_path: Path) -> None:
    cases = [("get", "pods", "team-b"), ("update", "deployments.apps", "team-a"), ("get", "/metrics", "")]
    for verb, target, ns in cases:
        code, report, _ = who_can(tmp_path, verb, target, "-n", ns)
        assert code == 0
        evaluator = load_evaluator(tmp_path / "abac.jsonl")
        expected = []
        for row in TOKENS.splitlines():
            _, name, _, *rest = row.split(",", 3)
            groups = tuple(g for g in (rest[0].strip('"').split(",") if rest else []) if g)
            if target.startswith("/"):
                a = Attributes(name, (*groups, "system:authenticated"), verb, False, path=target)
            else:
                resource, _, group = target.partition(".")
                a = Attributes(name, (*groups, "system:authenticated"), verb, True, ns, group, resource)
            if evaluator.authorize(a).allowed:
                expected.append(name)
        assert [u["user"] for u in report["knownUsers"]] == expected, (verb, target)


def test_a_path_request_is_decided_on_the_path(tmp_path: Path) -> None:
    _, report, _ = who_can(tmp_path, "get", "/metrics")
    assert [g["subject"] for g in report["grants"]] == ["group ops"]
    assert [u["user"] for u in report["knownUsers"]] == ["erin"]


def test_a_missing_policy_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatekeeper.cli",
            "who-can",
            "get",
            "pods",
            "--authorization-policy-file",
            str(tmp_path / "nope.jsonl"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "nope.jsonl" in done.stderr and "Traceback" not in done.stderr
