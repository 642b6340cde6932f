"""POST /authorize on a real server: versions, bad bodies, deny-unmatched, and hot reload."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import Server, running_server
from tests.support.waiting import wait_for

CALLER = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"/authorize"}}\n'
)
ALICE_PODS = '{"user":"alice","resource":"pods","readonly":true}\n'
BOB_PODS = '{"user":"bob","resource":"pods"}\n'


def review(
    user: str, verb: str = "get", version: str = "v1", groups: list[str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "user": user,
        "resourceAttributes": {"namespace": "default", "verb": verb, "version": "v1", "resource": "pods"},
    }
    spec["groups" if version == "v1" else "group"] = groups or ["system:authenticated"]
    return {"apiVersion": f"authorization.k8s.io/{version}", "kind": "SubjectAccessReview", "spec": spec}


def allowed(client: httpx.Client, user: str) -> bool:
    response = client.post("/authorize", json=review(user))
    assert response.status_code == 200, response.text
    return bool(response.json()["status"]["allowed"])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, httpx.Client, Path]]:
    policy = tmp_path / "abac.jsonl"
    policy.write_text(CALLER + ALICE_PODS)
    args = ["--authorization-policy-file", str(policy)]
    with running_server(tmp_path, args) as server, server.client() as client:
        yield server, client, policy


def test_answers_in_the_version_it_was_sent_and_names_the_rule(
    served: tuple[Server, httpx.Client, Path],
) -> None:
    _, client, policy = served
    for version in ("v1", "v1beta1"):
        body = client.post("/authorize?timeout=30s", json=review("alice", version=version)).json()
        assert body["apiVersion"] == f"authorization.k8s.io/{version}"
        assert body["status"] == {"allowed": True, "reason": f"{policy}:2"}
    denied = client.post("/authorize", json=review("alice", verb="delete")).json()["status"]
    assert denied == {"allowed": False, "reason": "No policy matched."}


def test_v1beta1_groups_arrive_under_spec_group(served: tuple[Server, httpx.Client, Path]) -> None:
    _, client, policy = served
    policy.write_text(CALLER + '{"group":"admins","resource":"pods"}\n')
    wait_for(
        lambda: client.post("/authorize", json=review("x", groups=["admins"])).json()["status"]["allowed"]
    )
    body = client.post("/authorize", json=review("x", version="v1beta1", groups=["admins"])).json()
    assert body["status"]["allowed"] is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "request body is not valid JSON"),
        (b"[]", "expected a JSON object, got array"),
        (b'{"apiVersion":"v1","kind":"Pod"}', "apiVersion: expected one of authorization.k8s.io/v1"),
        (b'{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview"}', "spec: required field"),
        (
            b'{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":5}}',
            "spec.user: expected a string, got number",
        ),
        (b"", "request body is empty"),
    ],
)
def test_bad_bodies_get_400_saying_what_is_wrong(
    served: tuple[Server, httpx.Client, Path], body: bytes, message: str
) -> None:
    _, client, _ = served
    response = client.post("/authorize", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    status = response.json()
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 400, "BadRequest")
    assert message in status["message"]


def test_good_broken_good_and_atomic_rename(served: tuple[Server, httpx.Client, Path]) -> None:
    server, client, policy = served
    assert allowed(client, "alice") and not allowed(client, "bob")

    policy.write_text(CALLER + BOB_PODS)  # good, written in place
    wait_for(lambda: allowed(client, "bob"))
    assert not allowed(client, "alice")

    policy.write_text(CALLER + BOB_PODS + '{"user":"alice","readonly":"yes"}\n')  # broken
    wait_for(lambda: not client.get("/readyz").json()["checks"]["authorization policy"]["ok"])
    check = client.get("/readyz").json()["checks"]["authorization policy"]
    assert check["lastError"] == f'{policy}:3: readonly: expected a boolean, got string "yes"'
    assert allowed(client, "bob") and not allowed(client, "alice")  # last good version in force
    assert f"{policy}:3" in server.log()

    staged = policy.with_suffix(".new")  # good again, by atomic rename (how ConfigMaps update)
    staged.write_text(CALLER + ALICE_PODS)
    os.replace(staged, policy)
    wait_for(lambda: allowed(client, "alice"))
    assert not allowed(client, "bob")
    assert client.get("/readyz").json()["checks"]["authorization policy"]["ok"]


def test_deny_unmatched(tmp_path: Path) -> None:
    policy = tmp_path / "abac.jsonl"
    policy.write_text(CALLER + ALICE_PODS)
    args = ["--authorization-policy-file", str(policy), "--authorization-deny-unmatched"]
    with running_server(tmp_path, args) as server, server.client() as client:
        status = client.post("/authorize", json=review("mallory")).json()["status"]
    assert status == {"allowed": False, "denied": True, "reason": "No policy matched."}


def test_a_bad_policy_at_start_up_is_refused_with_file_and_line(tmp_path: Path) -> None:
    policy = tmp_path / "abac.jsonl"
    policy.write_text(CALLER + "{oops}\n")
    with (
        pytest.raises(RuntimeError, match=rf"{policy}:2: invalid JSON"),
        running_server(tmp_path, ["--authorization-policy-file", str(policy)], ready_timeout=15),
    ):
        pass
