"""POST /mutate, /validate, /admit on a real server over TLS, with the seed's exact plugin flag,
a SQLite store, state manifests that hot-reload, and the admission stream feeding the store."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.admission import pod, review
from tests.support.server import Server, running_server

SEED_FLAG = (
    "--admission-control=NamespaceLifecycle,NamespaceExists,LimitRanger,SecurityContextDeny,"
    "ServiceAccount,ResourceQuota"
)
STATE = """\
apiVersion: v1
kind: Namespace
metadata: {name: team}
status: {phase: Active}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: team}
"""
MANIFESTS_CHECK = "state manifests"
Served = tuple[Server, httpx.Client, Path]
CALLER_POLICY = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"*"}}\n'
)


def policy_args(workdir: Path) -> list[str]:
    policy = workdir / "abac.jsonl"
    policy.write_text(CALLER_POLICY)
    return ["--authorization-policy-file", str(policy)]


def namespace_review(operation: str, name: str, dry_run: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] | None = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    if operation == "DELETE":
        obj = None
    return review(operation, "namespaces", "Namespace", "", name, obj=obj, dry_run=dry_run)


def decoded_patch(response: dict[str, Any]) -> list[dict[str, Any]]:
    assert response["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return patch


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("admission-server")
    state = workdir / "state.yaml"
    state.write_text(STATE)
    args = [SEED_FLAG, "--state", str(state), "--store", f"sqlite:///{workdir / 'gatekeeper.db'}",
            *policy_args(workdir)]
    with running_server(workdir, args) as srv, srv.client() as client:
        yield srv, client, state


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(f"{path}?timeout=10s", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["response"]
    return result


def test_mutate_patches_validate_never_does_admit_does_both(server: Served) -> None:
    _, client, _ = server
    mutated = post(client, "/mutate", review())
    assert mutated["allowed"] is True and mutated["uid"] == "uid-CREATE-pods-web"
    ops = {(op["op"], op["path"]) for op in decoded_patch(mutated)}
    assert ("add", "/spec/serviceAccountName") in ops and ("add", "/spec/volumes") in ops
    admitted = post(client, "/admit", review())
    assert admitted["allowed"] is True and decoded_patch(admitted)
    validated = post(client, "/validate", review(obj=pod(serviceAccountName="default")))
    assert validated == {"uid": "uid-CREATE-pods-web", "allowed": True}


def test_the_response_comes_back_in_the_version_sent(server: Served) -> None:
    body = review()
    body["apiVersion"] = "admission.k8s.io/v1beta1"
    answer = server[1].post("/admit", json=body).json()
    assert answer["apiVersion"] == "admission.k8s.io/v1beta1" and answer["response"]["allowed"] is True


def test_a_bad_review_is_a_400_naming_the_field(server: Served) -> None:
    body = review()
    del body["request"]["uid"]
    answer = server[1].post("/validate", json=body)
    assert answer.status_code == 400
    assert answer.json()["message"] == "not a valid AdmissionReview: request.uid: required field is missing"
    json_type = {"Content-Type": "application/json"}
    assert server[1].post("/mutate", content=b"[1]", headers=json_type).status_code == 400


def test_refusals_carry_kubernetes_status(server: Served) -> None:
    _, client, _ = server
    missing = post(client, "/admit", review(namespace="nowhere", obj=pod(namespace="nowhere")))
    assert missing["status"]["code"] == 404
    assert missing["status"]["message"] == 'namespaces "nowhere" not found'
    robot = post(client, "/admit", review(obj=pod(serviceAccountName="robot")))
    assert robot["status"] == {
        "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": 'pods "web" is forbidden: error looking up service account team/robot: '
                   'serviceaccount "robot" not found',
    }
    root = post(client, "/validate", review(obj=pod(serviceAccountName="default",
                                                   securityContext={"runAsUser": 0})))
    assert root["status"]["message"] == (
        'pods "web" is forbidden: pod.Spec.SecurityContext.RunAsUser is forbidden'
    )


def test_an_admitted_request_writes_no_state(server: Served) -> None:
    """An admitted request is not a stored object (storage or a later webhook can still refuse it),
    so serve learns nothing from it: a namespace created or deleted through admission changes
    nothing; the state is what the manifests (or `state sync`, or the API server's watch) say."""
    _, client, _ = server
    assert post(client, "/validate", namespace_review("CREATE", "fresh"))["allowed"]
    in_fresh = post(client, "/validate", review(namespace="fresh", obj=pod(namespace="fresh")))
    assert in_fresh["status"]["code"] == 404
    assert post(client, "/admit", namespace_review("DELETE", "team"))["allowed"]
    assert post(client, "/admit", review(obj=pod(serviceAccountName="default")))["allowed"]  # team: Active
    immortal = post(client, "/admit", namespace_review("DELETE", "default"))
    assert immortal["status"]["message"] == (
        'namespaces "default" is forbidden: this namespace may not be deleted'
    )
    validated = post(client, "/validate", namespace_review("DELETE", "kube-system"))
    assert validated["status"]["message"] == (
        'namespaces "kube-system" is forbidden: this namespace may not be deleted'
    )


def _manifest_check(client: httpx.Client) -> dict[str, Any]:
    check: dict[str, Any] = client.get("/readyz").json()["checks"][MANIFESTS_CHECK]
    return check


def _wait_for_reload(client: httpx.Client, before: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = _manifest_check(client)
        if (after["reloads"], after["failures"]) != (before["reloads"], before["failures"]):
            return after
        time.sleep(0.05)
    raise AssertionError("the server did not reload the state manifests")


def test_manifests_hot_reload_and_a_bad_one_keeps_the_last_good_state(
    server: Served,
) -> None:
    _, client, state = server
    other = review(namespace="other", obj=pod(namespace="other", serviceAccountName="default"))
    assert post(client, "/validate", other)["status"]["code"] == 404
    before = _manifest_check(client)
    state.write_text(STATE + "---\nkind: Namespace\napiVersion: v1\nmetadata: {name: other}\n---\n"
                     "kind: ServiceAccount\napiVersion: v1\nmetadata: {name: default, namespace: other}\n")
    assert _wait_for_reload(client, before)["ok"]
    assert post(client, "/validate", other)["allowed"]
    before = _manifest_check(client)
    state.write_text(STATE + "---\nkind: Namespace\nmetadata: {name: broken}\nstatus: {phase: Gone}\n")
    failed = _wait_for_reload(client, before)
    assert not failed["ok"]
    assert failed["lastError"] == (
        f"{state}: document 2: status.phase: expected one of Active, Terminating, got 'Gone'"
    )
    assert post(client, "/validate", other)["allowed"]  # the last good state stays in force


def test_the_sqlite_store_survives_a_restart(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    live = tmp_path / "live.yaml"
    live.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: kept}\nstatus: {phase: Active}\n")
    synced = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "state", "sync", "--store", store, str(live)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert synced.returncode == 0, synced.stderr
    args = ["--enable-admission-plugins", "NamespaceLifecycle", "--store", store, *policy_args(tmp_path)]
    kept = review(namespace="kept", obj=pod(namespace="kept"))
    for _restart in range(2):
        with running_server(tmp_path, args) as srv, srv.client() as client:
            assert post(client, "/admit", kept)["allowed"]


def test_an_unknown_plugin_is_refused_at_start_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "serve", "--cert-dir", str(tmp_path / "certs"),
         "--store", "memory://", "--enable-admission-plugins", "NamespaceLifecycle,PodSecurityPolicy",
         *policy_args(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    expected = "unknown admission plugin(s) PodSecurityPolicy; known plugins: NamespaceLifecycle, "
    assert expected in result.stderr


LATE = "kind: Namespace\nmetadata: {{name: late}}\nstatus: {{phase: {phase}}}\n"


def test_a_file_added_to_a_watched_folder_is_loaded_and_then_watched(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "team.yaml").write_text(STATE)
    args = ["--enable-admission-plugins", "NamespaceLifecycle", "--state", str(folder),
            "--store", f"sqlite:///{tmp_path / 'state.db'}", *policy_args(tmp_path)]
    elsewhere = review(namespace="late", obj=pod(namespace="late"))
    with running_server(tmp_path, args) as srv, srv.client() as client:
        assert post(client, "/admit", elsewhere)["status"]["code"] == 404
        before = _manifest_check(client)
        (folder / "late.yaml").write_text(LATE.format(phase="Active"))
        assert _wait_for_reload(client, before)["ok"]
        assert post(client, "/admit", elsewhere)["allowed"]
        before = _manifest_check(client)
        (folder / "late.yaml").write_text(LATE.format(phase="Terminating"))
        assert _wait_for_reload(client, before)["ok"]
        assert "being terminated" in post(client, "/admit", elsewhere)["status"]["message"]
