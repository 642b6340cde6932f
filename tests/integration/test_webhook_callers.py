"""Who may call gatekeeper's own endpoints (finding 5), on a real `gatekeeper serve` over real TLS.

The cluster's ABAC policy here is an operator's worst case: mallory has `nonResourcePath: "*"`,
every authenticated user has it read-only, and robot has the old per-path line for /authorize.
None of that opens a webhook: only `--webhook-callers` (kube-apiserver, group admission-bots)
may post reviews, only `--metrics-readers` (group monitoring) may read /metrics and /quota.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.quota_reviews import NAMESPACE, pod_review, state, used
from tests.support.server import Server, running_server

WEBHOOKS = ("/authorize", "/authenticate", "/mutate", "/validate", "/admit")
TOKEN_SCRAPER = "tok-scraper-0f3c2a9e61d84b57"


def rule(spec: dict[str, Any]) -> str:
    kind = {"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy"}
    return json.dumps({**kind, "spec": spec})


POLICY = "\n".join([
    rule({"user": "mallory", "nonResourcePath": "*"}),
    rule({"group": "system:authenticated", "readonly": True, "nonResourcePath": "*"}),
    rule({"user": "robot", "nonResourcePath": "/authorize"}),
    rule({"user": "alice", "namespace": "*", "resource": "*", "apiGroup": "*"}),
]) + "\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("callers")
    (workdir / "abac.jsonl").write_text(POLICY)
    (workdir / "state.yaml").write_text(state({"pods": "10", "requests.cpu": "4"}))
    (workdir / "tokens.csv").write_text(f"{TOKEN_SCRAPER},scraper,uid-scraper,monitoring\n")
    args = [
        "--authorization-policy-file", "abac.jsonl", "--state", "state.yaml", "--store", "memory://",
        "--token-auth-file", "tokens.csv", "--enable-admission-plugins", "NamespaceLifecycle,ResourceQuota",
        "--webhook-callers", "user:kube-apiserver,group:admission-bots",
        "--metrics-readers", "group:monitoring",
    ]
    with running_server(workdir, args) as running:
        yield running


def sar() -> dict[str, Any]:
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "alice", "resourceAttributes": {"verb": "get", "resource": "pods"}}}


def namespace_delete() -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "forged-ns-delete", "name": NAMESPACE, "operation": "DELETE",
        "kind": {"group": "", "version": "v1", "kind": "Namespace"},
        "resource": {"group": "", "version": "v1", "resource": "namespaces"},
        "userInfo": {"username": "system:admin"}, "object": None,
        "oldObject": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
    }}


BODIES: dict[str, Any] = {
    "/authorize": sar(),
    "/authenticate": {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                      "spec": {"token": "x"}},
    "/mutate": namespace_delete(),
    "/validate": namespace_delete(),
    "/admit": namespace_delete(),
}


@pytest.mark.parametrize("path", WEBHOOKS)
def test_a_wide_abac_grant_does_not_open_a_webhook(server: Server, path: str) -> None:
    for user in ("mallory", "robot"):
        with server.client_as(user) as c:
            response = c.post(path + "?timeout=10s", json=BODIES[path])
        assert response.status_code == 403, response.text
        assert response.json()["message"] == f'forbidden: User "{user}" cannot post path "{path}"'
    assert f"403 POST {path} for user 'mallory': not named by --webhook-callers" in server.log()


def test_forged_reviews_change_no_state(server: Server) -> None:
    scraper = server.client(cert=None, headers={"Authorization": f"Bearer {TOKEN_SCRAPER}"})
    with scraper:
        before = used(scraper)
    with server.client_as("mallory") as mallory:
        for path in ("/validate", "/admit"):
            assert mallory.post(path, json=namespace_delete()).status_code == 403
            assert mallory.post(path, json=pod_review(f"forged-{path}", "forged", cpu="3")).status_code == 403
    with server.client() as apiserver:
        created = apiserver.post("/validate", json=pod_review("real-1", "real", cpu="1")).json()
    assert created["response"]["allowed"] is True, created  # team-a is still Active: no forged DELETE
    with server.client(cert=None, headers={"Authorization": f"Bearer {TOKEN_SCRAPER}"}) as scraper:
        after = used(scraper)
    assert before.get("requests.cpu", "0") == "0" and after["requests.cpu"] == "1"  # only the real pod


@pytest.mark.parametrize("path", WEBHOOKS)
def test_the_listed_identities_call_every_webhook(server: Server, path: str) -> None:
    clients = [server.client(), server.client_as("some-bot", groups=["admission-bots"])]
    for client in clients:
        with client as c:
            response = c.post(path + "?timeout=10s", json=BODIES[path])
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/metrics", "/quota"])
def test_readers_are_the_metrics_readers_list(server: Server, path: str) -> None:
    with server.client(cert=None, headers={"Authorization": f"Bearer {TOKEN_SCRAPER}"}) as scraper:
        assert scraper.get(path).status_code == 200
    for client in (server.client_as("mallory"), server.client()):  # a wide grant; a webhook caller
        with client as c:
            response = c.get(path)
        assert response.status_code == 403, response.text
        assert response.json()["message"].endswith(f'cannot get path "{path}"')


def test_serve_warns_about_policy_lines_that_no_longer_let_a_caller_in(server: Server) -> None:
    log = server.log()
    assert "abac.jsonl:3 grants user 'robot' the path /authorize" in log
    assert "add user:robot to --webhook-callers" in log
    assert "grants user 'mallory'" not in log  # a "*" line is the cluster's: no warning


@pytest.mark.parametrize("value", ["kube-apiserver", "user:", "group:", "users:alice"])
def test_a_list_entry_without_user_or_group_stops_serve(tmp_path: Path, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "serve", "--webhook-callers", value],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    expected = f"gatekeeper serve: --webhook-callers {value!r}: expected user:NAME or group:NAME"
    assert result.stderr.startswith(expected)
    assert "Traceback" not in result.stderr


def test_the_default_lists_are_the_dev_clients(tmp_path: Path) -> None:
    (tmp_path / "abac.jsonl").write_text(rule({"user": "mallory", "nonResourcePath": "*"}) + "\n")
    args = ["--authorization-policy-file", "abac.jsonl", "--state", "state.yaml", "--store", "memory://",
            "--enable-admission-plugins", "ResourceQuota"]
    (tmp_path / "state.yaml").write_text(state({"pods": "1"}))
    with running_server(tmp_path, args) as running:
        with running.client() as c:  # kube-apiserver, the certificate `certs init` makes
            assert c.post("/authorize", json=sar()).status_code == 200
            assert c.get("/metrics").status_code == 200
        with running.client_as("prometheus") as c:
            assert c.get("/metrics").status_code == 200
            assert c.post("/authorize", json=sar()).status_code == 403
        with running.client_as("mallory") as c:
            assert c.post("/authorize", json=sar()).status_code == 403
            assert c.get("/metrics").status_code == 403
