"""`gatekeeper replay` on hand-written audit events: every field it maps, every event it must not
guess about, and its exit status. The e2e suite replays the real kube-apiserver's log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

GRANT_ALICE_TEAM_A = {"user": "alice", "namespace": "team-a", "resource": "*", "apiGroup": "*"}
GRANT_ALICE_ALL = {"user": "alice", "namespace": "*", "resource": "*", "apiGroup": "*"}
GRANT_VERSION = {"group": "system:authenticated", "readonly": True, "nonResourcePath": "/version"}


def policy(tmp_path: Path, name: str, *lines: dict[str, Any]) -> Path:
    path = tmp_path / name
    v1beta1 = "abac.authorization.kubernetes.io/v1beta1"
    wrapped = ({"apiVersion": v1beta1, "kind": "Policy", "spec": spec} for spec in lines)
    path.write_text("".join(json.dumps(line) + "\n" for line in wrapped))
    return path


def event(
    n: int, user: str, verb: str, uri: str, ref: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"id-{n}",
        "stage": "ResponseComplete",
        "requestURI": uri,
        "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    if ref is not None:
        doc["objectRef"] = {"apiVersion": "v1", **ref}
    doc.update(extra)
    return doc


def replay(
    tmp_path: Path, new: Path, *events: dict[str, Any] | str, args: tuple[str, ...] = ()
) -> tuple[int, Any]:
    log = tmp_path / "audit.log"
    log.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatekeeper.cli",
            "replay",
            "--authorization-policy-file",
            str(new),
            "--format",
            "json",
            *args,
            str(log),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def pod_create(n: int, ns: str, **extra: Any) -> dict[str, Any]:
    return event(
        n, "alice", "create", f"/api/v1/namespaces/{ns}/pods", {"resource": "pods", "namespace": ns}, **extra
    )


def test_a_lost_grant_is_grouped_counted_and_exits_1(tmp_path: Path) -> None:
    new = policy(tmp_path, "new.jsonl", GRANT_ALICE_TEAM_A)
    code, report = replay(
        tmp_path, new, pod_create(1, "team-a"), pod_create(2, "team-b"), pod_create(3, "team-b")
    )
    assert code == 1
    assert (report["decided"], report["unchanged"], report["lost"], report["gained"]) == (3, 1, 2, 0)
    [change] = report["changes"]
    assert change | {"example": None} == {
        "direction": "lost",
        "user": "alice",
        "impersonatedBy": "",
        "verb": "create",
        "target": "pods",
        "namespace": "team-b",
        "count": 2,
        "example": None,
    }
    assert change["example"]["auditID"] == "id-2"
    assert change["example"]["event"].endswith("audit.log:2")
    assert change["example"]["newReason"] == "No policy matched."
    assert change["example"]["baselineReason"] == "recorded: allow"


def test_only_gained_grants_exit_0(tmp_path: Path) -> None:
    new = policy(tmp_path, "new.jsonl", GRANT_ALICE_ALL)
    refused = pod_create(1, "team-b", annotations={"authorization.k8s.io/decision": "forbid"})
    code, report = replay(tmp_path, new, refused)
    assert code == 0
    assert [(c["direction"], c["example"]["newReason"]) for c in report["changes"]] == [
        ("gained", f"{new}:1")
    ]


def test_a_baseline_policy_replaces_the_recorded_decisions(tmp_path: Path) -> None:
    old = policy(tmp_path, "old.jsonl", GRANT_ALICE_ALL)
    new = policy(tmp_path, "new.jsonl", GRANT_ALICE_TEAM_A)
    refused = pod_create(1, "team-b", annotations={"authorization.k8s.io/decision": "forbid"})
    code, report = replay(tmp_path, new, refused, args=("--baseline-policy-file", str(old)))
    assert code == 1
    assert report["changes"][0]["example"]["baselineReason"] == f"{old}:1"


def test_an_impersonated_request_is_decided_as_the_impersonated_user(tmp_path: Path) -> None:
    new = policy(tmp_path, "new.jsonl", {"user": "bob", "namespace": "*", "resource": "pods"})
    as_bob = event(
        1,
        "admin",
        "list",
        "/api/v1/namespaces/x/pods",
        {"resource": "pods", "namespace": "x"},
        impersonatedUser={"username": "bob", "groups": ["system:authenticated"]},
        annotations={"authorization.k8s.io/decision": "forbid"},
    )
    _, report = replay(tmp_path, new, as_bob)
    assert [(c["user"], c["impersonatedBy"], c["direction"]) for c in report["changes"]] == [
        ("bob", "admin", "gained")
    ]


def test_fields_of_the_request_reach_the_policy(tmp_path: Path) -> None:
    scale = {"user": "alice", "namespace": "team-a", "resource": "deployments", "apiGroup": "apps"}
    new = policy(tmp_path, "new.jsonl", scale, GRANT_VERSION)
    ref = {
        "resource": "deployments",
        "subresource": "scale",
        "namespace": "team-a",
        "apiGroup": "apps",
        "name": "web",
    }
    events = [
        event(1, "alice", "update", "/apis/apps/v1/namespaces/team-a/deployments/web/scale", ref),
        event(2, "carol", "get", "/version?timeout=32s"),
        event(3, "carol", "get", "/ver%73ion"),
        event(4, "carol", "get", "/healthz"),
    ]
    _, report = replay(tmp_path, new, *events)
    assert report["unchanged"] == 3
    assert [(c["user"], c["target"]) for c in report["changes"]] == [("carol", "/healthz")]


def test_other_stages_are_counted_not_decided(tmp_path: Path) -> None:
    new = policy(tmp_path, "new.jsonl", GRANT_ALICE_ALL)
    received = pod_create(1, "a", stage="RequestReceived")
    del received["annotations"]
    started = event(
        2, "alice", "watch", "/api/v1/pods?watch=1", {"resource": "pods"}, stage="ResponseStarted"
    )
    _, report = replay(tmp_path, new, received, pod_create(1, "a"), started)
    assert report["decided"] == 1
    assert report["otherStages"] == {"RequestReceived": 1, "ResponseStarted": 1}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("not json", "not valid JSON"),
        (
            json.dumps({"kind": "Pod", "apiVersion": "v1"}),
            "apiVersion/kind v1/Pod: expected audit.k8s.io/v1/Event",
        ),
        (json.dumps(event(1, "alice", "frobnicate", "/x")), "verb 'frobnicate': not an HTTP method"),
        (
            json.dumps(event(1, "alice", "escalate", "/api/v1/pods", {"resource": "pods"})),
            "verb 'escalate': not a verb",
        ),
        (json.dumps(event(1, "", "get", "/version")), "user.username: empty"),
        (json.dumps(event(1, "alice", "get", "/version", stage="Done")), "stage 'Done'"),
        (
            json.dumps(event(1, "alice", "get", "/version", annotations={})),
            "no authorization.k8s.io/decision",
        ),
        (json.dumps(event(1, "alice", "get", "/version", objectRef=[])), "objectRef: expected an object"),
    ],
)
def test_an_event_it_cannot_map_is_named_never_guessed(tmp_path: Path, bad: str, reason: str) -> None:
    new = policy(tmp_path, "new.jsonl", GRANT_VERSION)
    code, report = replay(tmp_path, new, bad)
    assert code == 0
    assert report["decided"] == 0
    [entry] = report["notDecided"]
    assert reason in entry["reason"]
    assert (entry["count"], entry["first"].rsplit(":", 1)[-1]) == (1, "1")


def test_an_event_list_document_is_read_whole(tmp_path: Path) -> None:
    new = policy(tmp_path, "new.jsonl", GRANT_ALICE_TEAM_A)
    doc = {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "items": [pod_create(1, "team-a"), pod_create(2, "b")],
    }
    code, report = replay(tmp_path, new, json.dumps(doc, indent=2))
    assert (code, report["decided"], report["lost"]) == (1, 2, 1)
    assert report["changes"][0]["example"]["event"].endswith("audit.log:items[1]")


def test_text_output_names_each_change_with_an_example(tmp_path: Path) -> None:
    new = policy(tmp_path, "new.jsonl", GRANT_ALICE_TEAM_A)
    log = tmp_path / "audit.log"
    log.write_text(json.dumps(pod_create(7, "team-b")) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "replay", "--authorization-policy-file", str(new), "-"],
        input=log.read_text(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "alice: create pods in namespace team-b - 1 request\n" in done.stdout
    assert "e.g. <stdin>:1 auditID id-7 /api/v1/namespaces/team-b/pods" in done.stdout


@pytest.mark.parametrize("which", ["policy", "log"])
def test_a_missing_file_is_a_usage_error_naming_it(tmp_path: Path, which: str) -> None:
    new = policy(tmp_path, "new.jsonl", GRANT_VERSION)
    log = tmp_path / "audit.log"
    log.write_text("")
    missing = tmp_path / "missing"
    args = [str(missing if which == "policy" else new), str(missing if which == "log" else log)]
    done = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "replay", "--authorization-policy-file", args[0], args[1]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert str(missing) in done.stderr
    assert "Traceback" not in done.stderr
