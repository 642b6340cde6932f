"""A store that cannot answer is answered the same wherever gatekeeper meets it: a 503 Status.

A real `gatekeeper serve` on a real etcd member, which is stopped mid-run: every route that reads
the store answers 503 ServiceUnavailable naming etcd (so kube-apiserver's failurePolicy decides,
Fail or Ignore), never a 200 with a denial or a 500, and answers again once etcd is back.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from tests.support.etcd import fresh_prefix, running_cluster
from tests.support.quota_reviews import CALLER, NAMESPACE, pod_review, state
from tests.support.server import running_server
from tests.support.waiting import wait_for

ADMISSION = ("/mutate", "/validate", "/admit")


def serve_args(workdir: Path, store: str) -> list[str]:
    (workdir / "abac.jsonl").write_text(CALLER)
    (workdir / "state.yaml").write_text(state({"pods": "100"}))
    return ["--authorization-policy-file", "abac.jsonl", "--state", "state.yaml", "--store", store,
            "--etcd-prefix", fresh_prefix(), "--enable-admission-plugins", "NamespaceLifecycle,ResourceQuota"]


def assert_unavailable(response: httpx.Response, what: str) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert (body["kind"], body["code"], body["reason"]) == ("Status", 503, "ServiceUnavailable"), body
    assert body["message"].startswith(f"{what} is unavailable: etcd is unavailable"), body


def admitted(client: httpx.Client, path: str) -> bool:
    response = client.post(path, json=pod_review(str(uuid.uuid4()), "web"))
    return response.status_code == 200 and bool(response.json()["response"]["allowed"])


def test_every_route_that_reads_the_store_answers_503_while_etcd_is_down(tmp_path: Path) -> None:
    with running_cluster(tmp_path / "etcd") as cluster, \
            running_server(tmp_path, serve_args(tmp_path, cluster.url)) as server, server.client() as client:
        wait_for(lambda: client.get("/readyz").status_code == 200, timeout=30)
        assert all(admitted(client, path) for path in ADMISSION)
        cluster.stop_all()
        wait_for(lambda: client.get("/readyz").status_code == 503, timeout=30)
        for path in ADMISSION:
            review = pod_review(str(uuid.uuid4()), "web")
            assert_unavailable(client.post(path, json=review), "admission state")
        assert_unavailable(client.get("/quota", params={"namespace": NAMESPACE}), "quota usage")
        assert client.get("/healthz").status_code == 200  # alive: only what needs the store is refused
        cluster.start_all()
        wait_for(lambda: admitted(client, "/admit"), timeout=30)
        assert client.get("/quota", params={"namespace": NAMESPACE}).status_code == 200
        assert "Traceback" not in server.log()
