"""ResourceQuota on a real server over HTTPS: races between worker processes, GET /quota, kill -9.

Every request here is a real AdmissionReview POSTed to /validate of a real `gatekeeper serve`
with a real SQLite store; nothing is mocked.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import kill_9, process_tree
from tests.support.quota_reviews import CALLER, NAMESPACE, allowed, pod_review, state, used
from tests.support.server import Server, running_server

PARALLEL = 64

def serve_args(workdir: Path, hard: dict[str, str], workers: int) -> list[str]:
    (workdir / "abac.jsonl").write_text(CALLER)
    (workdir / "state.yaml").write_text(state(hard))
    return [
        "--authorization-policy-file", "abac.jsonl", "--state", "state.yaml",
        "--store", "sqlite:///gatekeeper.db", "--enable-admission-plugins", "ResourceQuota",
        "--workers", str(workers),
    ]


@pytest.fixture
def two_workers_pods(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path, serve_args(tmp_path, {"pods": "10"}, workers=2)) as server:
        yield server


@pytest.fixture
def two_workers_cpu(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path, serve_args(tmp_path, {"requests.cpu": "1"}, workers=2)) as server:
        yield server


def race(server: Server, reviews: list[dict[str, Any]]) -> int:
    """POST every review to /validate at once (one connection each); the number admitted."""
    barrier = threading.Barrier(len(reviews))

    def send(review: dict[str, Any]) -> bool:
        with server.client() as client:
            client.get("/healthz")  # connect (TLS handshake) before the barrier, so the POSTs overlap
            barrier.wait()
            return allowed(client.post("/validate", json=review))

    with ThreadPoolExecutor(max_workers=len(reviews)) as pool:
        return sum(pool.map(send, reviews))


def test_64_parallel_creates_against_pods_10_admit_exactly_10(two_workers_pods: Server) -> None:
    reviews = [pod_review(str(uuid.uuid4()), f"p-{i}") for i in range(PARALLEL)]
    assert race(two_workers_pods, reviews) == 10
    with two_workers_pods.client() as client:
        assert used(client) == {"pods": "10"}


def test_64_parallel_cpu_requests_admit_exactly_what_fits(two_workers_cpu: Server) -> None:
    reviews = [pod_review(str(uuid.uuid4()), f"p-{i}", cpu="100m") for i in range(PARALLEL)]
    assert race(two_workers_cpu, reviews) == 10  # 10 × 100m = 1
    with two_workers_cpu.client() as client:
        assert used(client) == {"requests.cpu": "1"}


def lock_waits(client: httpx.Client) -> float:
    """gatekeeper_quota_lock_wait_seconds_count, summed over the workers."""
    response = client.get("/metrics")
    assert response.status_code == 200
    counts = [line.split()[-1] for line in response.text.splitlines()
              if line.startswith("gatekeeper_quota_lock_wait_seconds_count")]
    return float(counts[0]) if counts else 0.0


def test_every_charge_counts_its_wait_for_the_ledger_lock(two_workers_pods: Server) -> None:
    """Each charge, admitted or refused, waited for the ledger's write lock once; the wait is a
    metric of its own, apart from the request's latency."""
    reviews = [pod_review(str(uuid.uuid4()), f"p-{i}") for i in range(PARALLEL)]
    dry = pod_review(str(uuid.uuid4()), "dry")
    dry["request"]["dryRun"] = True  # checked, never charged: it takes no lock
    assert race(two_workers_pods, reviews) == 10
    with two_workers_pods.client() as client:
        assert lock_waits(client) == PARALLEL
        client.post("/validate", json=dry)
        assert lock_waits(client) == PARALLEL


def test_a_retried_review_is_charged_once_and_dry_run_never(two_workers_pods: Server) -> None:
    review = pod_review(str(uuid.uuid4()), "retried")
    dry = pod_review(str(uuid.uuid4()), "dry")
    dry["request"]["dryRun"] = True
    with two_workers_pods.client() as client:
        assert allowed(client.post("/validate", json=review))
        assert allowed(client.post("/validate", json=review))  # the same uid again: a retry
        assert allowed(client.post("/validate", json=dry))
        assert used(client) == {"pods": "1"}


def test_get_quota_requires_an_authorized_caller(two_workers_pods: Server) -> None:
    with two_workers_pods.client(cert=None) as anonymous:
        assert anonymous.get("/quota").status_code == 401
    with two_workers_pods.client_as("mallory") as mallory:
        assert mallory.get("/quota").status_code == 403


@pytest.mark.parametrize("workers", [1, 2])
def test_usage_survives_kill_9_during_a_load(tmp_path: Path, workers: int) -> None:
    """Kill -9 mid-load (every process), restart on the same file, retry what got no answer (same
    uid, as a client would): the usage equals the number of admitted answers, so nothing was lost
    or charged twice."""
    args = serve_args(tmp_path, {"pods": "50"}, workers=workers)
    reviews = [pod_review(str(uuid.uuid4()), f"p-{i}") for i in range(80)]
    answers: dict[str, bool] = {}
    lock = threading.Lock()
    with running_server(tmp_path, args) as server:
        killed = threading.Event()
        pids = process_tree(server.process.pid)
        assert len(pids) >= (1 if workers == 1 else workers + 1)  # the master and its workers

        def load(part: list[dict[str, Any]]) -> None:
            with server.client() as client:
                for review in part:
                    try:
                        answer = allowed(client.post("/validate", json=review))
                    except httpx.HTTPError:
                        continue  # no answer: the server died under this request
                    with lock:
                        answers[review["request"]["uid"]] = answer
                        if sum(answers.values()) >= 15 and not killed.is_set():
                            killed.set()
                            kill_9(pids)  # while the other threads are mid-request

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(load, [reviews[i::8] for i in range(8)]))
        assert killed.is_set()
    unanswered = [r for r in reviews if r["request"]["uid"] not in answers]
    assert unanswered, "the kill left no request unanswered; the load was too short to test anything"
    seen_admitted = sum(answers.values())
    with running_server(tmp_path, args) as server, server.client() as client:
        committed = int(used(client)["pods"])
        # every admitted answer is in the file; beyond them only requests that died unanswered
        assert seen_admitted <= committed <= seen_admitted + len(unanswered)
        for review in unanswered:
            answers[review["request"]["uid"]] = allowed(client.post("/validate", json=review))
        admitted = sum(answers.values())
        assert admitted == 50
        print(f"kill -9 after {seen_admitted} admitted answers; {len(unanswered)} unanswered; "
              f"{committed} committed at restart")
        assert used(client) == {"pods": str(admitted)}


def test_changing_hard_in_the_manifests_keeps_the_usage(two_workers_pods: Server, tmp_path: Path) -> None:
    with two_workers_pods.client() as client:
        for i in range(3):
            assert allowed(client.post("/validate", json=pod_review(str(uuid.uuid4()), f"p-{i}")))
        (tmp_path / "state.yaml").write_text(state({"pods": "4"}))

        def hard_is_4() -> bool:
            response = client.get("/quota", params={"namespace": NAMESPACE})
            return bool(response.json()["items"][0]["status"]["hard"] == {"pods": "4"})

        deadline = time.monotonic() + 20
        while not hard_is_4():
            assert time.monotonic() < deadline, "the manifest change was not picked up"
            time.sleep(0.1)
        assert used(client) == {"pods": "3"}
        assert allowed(client.post("/validate", json=pod_review(str(uuid.uuid4()), "p-3")))
        assert not allowed(client.post("/validate", json=pod_review(str(uuid.uuid4()), "p-4")))
