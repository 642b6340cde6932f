"""Several real `gatekeeper serve` replicas sharing a real etcd: quota races across replicas, a
replica killed mid-run, the etcd leader restarted mid-run, a namespace deletion seen by the others,
and gatekeeper started before etcd. Nothing is mocked; the etcd members are real processes.

A client here behaves like kube-apiserver behind a Service: a request that gets no usable answer
(the replica died, or etcd could not be reached) is sent again, with the same uid, to another
replica. The ledger charges a uid once, so the number of admitted answers must equal the usage.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.etcd import (
    Cluster,
    etcd_store,
    fresh_prefix,
    make_cluster,
    running_cluster,
    shared_cluster,
)
from tests.support.processes import kill_9, process_tree
from tests.support.quota_reviews import CALLER, NAMESPACE, pod_review, state, used
from tests.support.server import Server, running_server

PLUGINS = "NamespaceLifecycle,ResourceQuota"
SETTLE_SECONDS = 60  # how long a client keeps retrying a request before the test gives up


def replica_args(workdir: Path, store: str, hard: dict[str, str], prefix: str = "") -> list[str]:
    (workdir / "abac.jsonl").write_text(CALLER)
    (workdir / "state.yaml").write_text(state(hard))
    return [
        "--authorization-policy-file", "abac.jsonl", "--state", "state.yaml", "--store", store,
        "--etcd-prefix", prefix or fresh_prefix(), "--enable-admission-plugins", PLUGINS, "--workers", "1",
    ]


@contextlib.contextmanager
def replicas(
    workdir: Path, cluster: Cluster, hard: dict[str, str], count: int = 3, store: str = "", prefix: str = ""
) -> Iterator[list[Server]]:
    """`count` replicas on one prefix of `cluster` (or `store`), sharing the working folder (and so
    the dev CA)."""
    args = replica_args(workdir, store or cluster.url, hard, prefix)
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(running_server(workdir, args)) for _ in range(count)]


def answer(client: httpx.Client, review: dict[str, Any]) -> bool | None:
    """True: admitted; False: refused by the quota; None: no usable answer, send it again."""
    try:
        response = client.post("/admit", json=review)
    except httpx.HTTPError:
        return None  # the replica is gone
    if response.status_code == 503:
        assert "etcd" in response.json()["message"], response.text
        return None
    assert response.status_code == 200, response.text
    body = response.json()["response"]
    if body["allowed"]:
        return True
    message = body["status"]["message"]
    if "exceeded quota: compute" in message:
        return False
    assert "admission state is unavailable" in message and "etcd" in message, body
    return None


class Load:
    """Reviews sent from `threads` threads, each to the replicas in turn; every review is retried on
    the next replica until it gets an answer. `on_answer(admitted so far)` runs once per answer."""

    def __init__(self, servers: list[Server], on_answer: Callable[[int], None] = lambda _: None) -> None:
        self.servers = servers
        self.on_answer = on_answer
        self.answers: dict[str, bool] = {}
        self.retries = 0
        self._lock = threading.Lock()

    def run(self, reviews: list[dict[str, Any]], threads: int) -> None:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(self._send_all, [reviews[i::threads] for i in range(threads)]))

    @property
    def admitted(self) -> int:
        with self._lock:
            return sum(self.answers.values())

    def _send_all(self, part: list[dict[str, Any]]) -> None:
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(server.client()) for server in self.servers]
            for index, review in enumerate(part):
                self._send(clients, index, review)

    def _send(self, clients: list[httpx.Client], index: int, review: dict[str, Any]) -> None:
        deadline = time.monotonic() + SETTLE_SECONDS
        attempt = 0
        while True:
            result = answer(clients[(index + attempt) % len(clients)], review)
            if result is not None:
                break
            attempt += 1
            with self._lock:
                self.retries += 1
            assert time.monotonic() < deadline, f"no replica answered {review['request']['uid']}"
            time.sleep(0.05)
        with self._lock:
            self.answers[review["request"]["uid"]] = result
            admitted = sum(self.answers.values())
        self.on_answer(admitted)


def reviews(count: int) -> list[dict[str, Any]]:
    return [pod_review(str(uuid.uuid4()), f"p-{i}") for i in range(count)]


@pytest.fixture(scope="module")
def etcd() -> Cluster:
    return shared_cluster()


def test_200_creates_across_3_replicas_admit_exactly_50(etcd: Cluster, tmp_path: Path) -> None:
    with replicas(tmp_path, etcd, {"pods": "50"}) as servers:
        barrier = threading.Barrier(200)

        def send(index_review: tuple[int, dict[str, Any]]) -> bool | None:
            index, review = index_review
            with servers[index % 3].client() as client:
                client.get("/healthz")  # connect (TLS handshake) before the barrier, so the POSTs overlap
                barrier.wait()
                return answer(client, review)

        with ThreadPoolExecutor(max_workers=200) as pool:
            results = list(pool.map(send, enumerate(reviews(200))))
        assert results.count(None) == 0
        assert results.count(True) == 50
        for server in servers:
            with server.client() as client:
                assert used(client) == {"pods": "50"}


def test_a_replica_killed_mid_run_leaves_the_others_serving_and_nothing_over_admitted(
    etcd: Cluster, tmp_path: Path
) -> None:
    with replicas(tmp_path, etcd, {"pods": "50"}) as servers:
        victim = process_tree(servers[0].process.pid)
        killed = threading.Event()

        def kill_at_15(admitted: int) -> None:
            if admitted >= 15 and not killed.is_set():
                killed.set()
                kill_9(victim)

        load = Load(servers, kill_at_15)
        load.run(reviews(200), threads=12)
        assert killed.is_set() and servers[0].process.poll() is not None
        assert len(load.answers) == 200
        assert load.admitted == 50
        for server in servers[1:]:
            with server.client() as client:
                assert used(client) == {"pods": "50"}
        print(f"replica killed after 15 admitted; {load.retries} requests sent again to another replica")


def test_the_etcd_leader_restarted_mid_run_loses_and_doubles_no_charge(tmp_path: Path) -> None:
    with running_cluster(tmp_path / "etcd", size=3) as cluster:
        leader = cluster.wait_healthy()
        # the leader first: every replica talks to it, so its death cuts their watches and requests
        ordered = sorted(cluster.members, key=lambda member: member is not leader)
        store = "etcd://" + ",".join(member.endpoint for member in ordered)
        with replicas(tmp_path, cluster, {"pods": "50"}, store=store) as servers:
            restart_leader_mid_run(cluster, servers)


def restart_leader_mid_run(cluster: Cluster, servers: list[Server]) -> None:
    """Kill -9 the leader after 10 admitted answers and start it again a second later, under load;
    once the cluster settles, every request has an answer and usage equals the admitted ones."""
    restarts: list[threading.Timer] = []
    lock = threading.Lock()

    def restart_leader_at_10(admitted: int) -> None:
        with lock:
            if admitted < 10 or restarts:
                return
            leader = cluster.leader()
            assert leader is not None
            cluster.stop(leader, kill=True)
            restarts.append(threading.Timer(1.0, cluster.start, [leader]))
            restarts[0].start()

    load = Load(servers, restart_leader_at_10)
    load.run(reviews(200), threads=12)
    assert restarts, "the load ended before the leader was restarted"
    restarts[0].join()
    cluster.wait_healthy()
    assert len(load.answers) == 200
    assert load.admitted == 50
    for server in servers:
        with server.client() as client:
            assert used(client) == {"pods": "50"}
    print(f"leader restarted after 10 admitted; {load.retries} requests sent again")


def namespace_delete() -> dict[str, Any]:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE},
                 "status": {"phase": "Active"}}
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()), "name": NAMESPACE, "namespace": NAMESPACE, "operation": "DELETE",
            "kind": {"group": "", "version": "v1", "kind": "Namespace"},
            "resource": {"group": "", "version": "v1", "resource": "namespaces"},
            "userInfo": {"username": "alice"}, "object": None, "oldObject": namespace, "dryRun": False,
        },
    }


def refused_as_terminating(client: httpx.Client) -> bool:
    response = client.post("/admit", json=pod_review(str(uuid.uuid4()), "late"))
    body = response.json()["response"]
    if body["allowed"]:
        return False
    assert "because it is being terminated" in body["status"]["message"], body
    return True


# The requirement: the other replicas refuse within one second. The watch delivers the
# change in milliseconds; the bound is the requirement itself, not a tuned number.
PROPAGATION_BOUND_SECONDS = 1.0


def test_a_namespace_terminating_in_the_shared_store_is_refused_by_every_replica_within_a_second(
    etcd: Cluster, tmp_path: Path
) -> None:
    """Standalone, the state is what the manifests and `state sync` write into the shared store (an
    admitted request writes nothing): a change there reaches every replica through its watch."""
    prefix = fresh_prefix()
    with (
        replicas(tmp_path, etcd, {"pods": "1000"}, prefix=prefix) as servers,
        contextlib.ExitStack() as stack,
    ):
        clients = [stack.enter_context(server.client()) for server in servers]
        assert not any(refused_as_terminating(client) for client in clients)  # Active, and connected
        first = clients[0].post("/admit", json=namespace_delete())
        assert first.json()["response"]["allowed"], first.text
        assert not any(refused_as_terminating(client) for client in clients)  # admitted, not stored
        with etcd_store(etcd, prefix) as shared:
            shared.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE},
                        "status": {"phase": "Terminating"}})
        changed_at = time.monotonic()
        for client in clients:
            while not refused_as_terminating(client):
                assert time.monotonic() - changed_at < PROPAGATION_BOUND_SECONDS
            print(f"refused {time.monotonic() - changed_at:.3f}s after the change")


def manifests_applied(ready: httpx.Response) -> bool:
    return ready.status_code == 200 and bool(ready.json()["checks"]["state manifests"]["ok"])


def test_started_while_etcd_is_down_not_ready_then_recovers_without_a_restart(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path / "etcd")
    try:
        with running_server(tmp_path, replica_args(tmp_path, cluster.url, {"pods": "5"})) as server, \
                server.client() as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["status"] == "not ready" and "etcd" in ready.json()["reason"]
            refused = client.post("/admit", json=pod_review(str(uuid.uuid4()), "early"))
            assert refused.status_code == 503, refused.text
            assert refused.json()["kind"] == "Status" and "etcd is unavailable" in refused.json()["message"]
            cluster.start_all()
            deadline = time.monotonic() + 30
            while not manifests_applied(client.get("/readyz")):
                assert time.monotonic() < deadline, "gatekeeper did not become ready after etcd came back"
                time.sleep(0.1)
            # the state manifests reached etcd too: the namespace exists and the quota applies
            assert answer(client, pod_review(str(uuid.uuid4()), "late")) is True
            assert used(client) == {"pods": "1"}
            assert "Traceback" not in server.log()
    finally:
        cluster.stop_all()
