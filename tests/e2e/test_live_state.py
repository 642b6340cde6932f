"""Live state: gatekeeper's view of the cluster is the API server's, never what admission saw.

Each test reproduces one way the admission-stream design was broken (a create refused by storage
still recorded, a graceful delete giving quota back, namespaces it never heard of) and shows that
the cluster, not the request, decides now. Then the API server restarts under gatekeeper, three
replicas race for one quota, and a Secret's data is looked for everywhere gatekeeper keeps things.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from gatekeeper.backends.kube.store import KubeStore
from tests.e2e import scenarios
from tests.e2e.cluster import AUTHORIZATION_CONFIG, GATEKEEPER_USER, Cluster, Gatekeeper
from tests.support.server import free_port
from tests.support.waiting import wait_for


@pytest.fixture(autouse=True, scope="module")
def wired(cluster: Cluster) -> None:
    cluster.use(AUTHORIZATION_CONFIG)


def test_a_second_create_of_an_existing_object_changes_nothing_gatekeeper_enforces(cluster: Cluster) -> None:
    ns = "live-already-exists"
    scenarios.namespace(cluster, ns)
    strict = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": "strict",
            "namespace": ns,
            "annotations": {"kubernetes.io/enforce-mountable-secrets": "true"},
        },
    }
    for obj in (scenarios.quota("pods", ns, {"pods": "1"}), scenarios.limit_range("limits", ns), strict):
        assert scenarios.create(cluster, obj).ok
    scenarios.quota_synced(cluster, ns, "pods")
    looser = [
        scenarios.quota("pods", ns, {"pods": "1k"}),
        {
            **scenarios.limit_range("limits", ns),
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "64"}}]},
        },
        {**strict, "metadata": {"name": "strict", "namespace": ns}},
    ]
    for obj in looser:
        again = scenarios.create(cluster, obj)
        assert not again.ok and "AlreadyExists" in again.message, again.message
    big = scenarios.create(cluster, scenarios.pod("big", ns, {"limits": {"cpu": "8"}}))
    assert "maximum cpu usage per Container is 2, but limit is 8" in big.message
    volume = [{"name": "creds", "secret": {"secretName": "anything"}}]
    mounting = scenarios.create(
        cluster, scenarios.pod("mounts", ns, serviceAccountName="strict", volumes=volume)
    )
    assert "service account strict does not reference that secret" in mounting.message
    assert scenarios.create(cluster, scenarios.pod("first", ns)).ok
    second = scenarios.create(cluster, scenarios.pod("second", ns))
    assert "exceeded quota: pods, requested: pods=1, used: pods=1, limited: pods=1" in second.message


def test_a_quota_the_controller_has_not_synced_limits_nothing_yet(cluster: Cluster) -> None:
    """As in-tree: admission enforces status.hard, which the resourcequota controller writes."""
    ns = "live-unsynced"
    scenarios.namespace(cluster, ns)
    manager = cluster.control_plane.components["kube-controller-manager"]
    manager.stop()
    try:
        assert scenarios.create(cluster, scenarios.quota("none", ns, {"pods": "0"})).ok
        early = scenarios.create(cluster, scenarios.pod("early", ns))
        assert early.ok, early.message
    finally:
        cluster.control_plane.start_controller_manager()
    scenarios.quota_synced(cluster, ns, "none")
    late = scenarios.create(cluster, scenarios.pod("late", ns))
    assert "exceeded quota: none, requested: pods=1, used: pods=1, limited: pods=0" in late.message, (
        late.message
    )


def test_a_graceful_delete_frees_no_quota_until_the_pod_is_gone(cluster: Cluster) -> None:
    ns = "live-graceful"
    scenarios.namespace(cluster, ns)
    assert scenarios.create(cluster, scenarios.quota("pods", ns, {"pods": "1"})).ok
    scenarios.quota_synced(cluster, ns, "pods")
    # bound to a node, so kube-apiserver deletes it gracefully (it waits for a kubelet that never comes)
    long_lived = scenarios.pod(
        "long-lived", ns, nodeName="node-that-never-answers", terminationGracePeriodSeconds=31536000
    )
    assert scenarios.create(cluster, long_lived).ok
    assert scenarios.attempt(cluster, "delete", "pod", "long-lived", "-n", ns, "--wait=false").ok
    assert cluster.control_plane.get("pod", "long-lived", "-n", ns)["metadata"]["deletionTimestamp"]
    refused = scenarios.create(cluster, scenarios.pod("next", ns))
    assert "exceeded quota: pods" in refused.message, refused.message
    assert scenarios.used(cluster, ns, "pods") == {"pods": "1"}
    cluster.kubectl("delete", "pod", "long-lived", "-n", ns, "--grace-period=0", "--force")
    # the resourcequota controller recounts once the pod is really gone
    wait_for(lambda: scenarios.used(cluster, ns, "pods") == {"pods": "0"}, timeout=30, interval=0.3)
    assert scenarios.create(cluster, scenarios.pod("next", ns)).ok


def test_a_namespace_is_known_the_moment_it_exists(cluster: Cluster) -> None:
    name = "live-new-namespace"
    created = scenarios.create(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert created.ok
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first", "namespace": name}}
    at_once = scenarios.create(cluster, configmap)  # /validate runs NamespaceLifecycle on it
    assert at_once.ok, at_once.message


def test_the_api_server_restarted_under_gatekeeper(cluster: Cluster) -> None:
    ns = "live-restart"
    scenarios.namespace(cluster, ns)
    assert scenarios.create(cluster, scenarios.limit_range("limits", ns)).ok
    before = cluster.gatekeeper.wait_ready()["checks"]["cluster"]
    apiserver = cluster.control_plane.components["kube-apiserver"]
    apiserver.stop()
    try:
        gap = wait_for(
            lambda: cluster.gatekeeper.readyz().status_code == 503 and cluster.gatekeeper.readyz(),
            timeout=30,
            interval=0.2,
        )
        assert "watches broken" in gap.json()["reason"]
    finally:
        cluster.control_plane.start_apiserver()
        cluster.control_plane.restart_controller_manager(cluster.control_plane.controllers)
    after = cluster.gatekeeper.wait_ready()["checks"]["cluster"]
    for resource, watch in after.items():
        assert watch["synced"] and watch["connected"], (resource, watch)
        assert watch["relists"] + watch["events"] >= before[resource]["relists"] + before[resource]["events"]
    assert sum(watch["relists"] for watch in after.values()) > sum(w["relists"] for w in before.values())
    metrics = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in cluster.gatekeeper.metrics().splitlines()
        if line.startswith("gatekeeper_watch_")
    }
    for resource, watch in after.items():
        assert metrics[f'gatekeeper_watch_synced{{resource="{resource}"}}'] == 1
        assert metrics[f'gatekeeper_watch_relists_total{{resource="{resource}"}}'] >= watch["relists"]
        assert metrics[f'gatekeeper_watch_last_event_age_seconds{{resource="{resource}"}}'] >= 0
    big = scenarios.create(cluster, scenarios.pod("big", ns, {"limits": {"cpu": "8"}}))
    assert "maximum cpu usage per Container is 2" in big.message  # nothing lost across the gap
    scenarios.namespace(cluster, "live-after-restart")
    assert scenarios.create(cluster, scenarios.limit_range("limits", "live-after-restart")).ok
    late = scenarios.create(cluster, scenarios.pod("big", "live-after-restart", {"limits": {"cpu": "8"}}))
    assert "maximum cpu usage per Container is 2" in late.message  # and what came after is seen


class RoundRobin:
    """A TCP proxy on gatekeeper's own port spreading connections over the replicas: a Service's
    load balancing, on loopback. TLS passes through untouched."""

    def __init__(self, port: int, backends: list[int]) -> None:
        self.backends, self.turn, self.opened = backends, 0, 0
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                downstream, _ = self.listener.accept()
            except TimeoutError:
                continue
            backend = self.backends[self.turn % len(self.backends)]
            self.turn += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", backend), timeout=5)
            except OSError:
                downstream.close()
                continue
            self.opened += 1
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        source.settimeout(None)
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def three_replicas(cluster: Cluster) -> Iterator[RoundRobin]:
    main = cluster.gatekeeper
    replicas = [Gatekeeper(main.workdir, free_port(), main.kubeconfig) for _ in range(3)]
    main.stop()
    proxy = None
    try:
        for replica in replicas:
            replica.start()
        proxy = RoundRobin(main.port, [replica.port for replica in replicas])
        yield proxy
    finally:
        if proxy is not None:
            proxy.close()
        for replica in replicas:
            replica.stop()
        main.start()


def python_client(cluster: Cluster) -> kube_client.CoreV1Api:
    configuration = kube_client.Configuration()
    kube_config.load_kube_config(
        config_file=str(cluster.control_plane.admin), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = 64
    return kube_client.CoreV1Api(kube_client.ApiClient(configuration))


def test_three_replicas_200_concurrent_creates_exactly_fill_the_quota(cluster: Cluster) -> None:
    ns = "live-race"
    scenarios.namespace(cluster, ns)
    assert scenarios.create(cluster, scenarios.quota("pods", ns, {"pods": "50"})).ok
    scenarios.quota_synced(cluster, ns, "pods")
    api = python_client(cluster)

    refusals: Counter[int] = Counter()

    def create(index: int) -> bool:
        try:
            api.create_namespaced_pod(ns, scenarios.pod(f"racer-{index}", ns))
        except kube_client.ApiException as exc:
            assert exc.status in (403, 409, 500), exc.body
            refusals[exc.status] += 1
            return False
        return True

    with three_replicas(cluster) as proxy, ThreadPoolExecutor(max_workers=40) as pool:
        started = time.monotonic()
        created = sum(pool.map(create, range(200)))
        elapsed = time.monotonic() - started
        assert proxy.opened >= 3  # the API server's connections reached every replica
    pods = api.list_namespaced_pod(ns).items
    print(f"200 creates in {elapsed:.1f} s, {proxy.opened} connections: {created} created, {dict(refusals)}")
    assert created == len(pods) == 50
    assert scenarios.used(cluster, ns, "pods") == {"pods": "50"}


def test_no_secret_data_in_gatekeeper_memory_files_or_logs(cluster: Cluster, tmp_path: Path) -> None:
    ns = "live-secrets"
    scenarios.namespace(cluster, ns)
    value = f"do-not-keep-{uuid.uuid4().hex}"
    encoded = base64.b64encode(value.encode()).decode()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": ns},
        "type": "Opaque",
        "data": {"password": encoded},
        "stringData": {"token": value},
    }
    # `kubectl apply` also copies the whole Secret, data included, into an annotation
    cluster.control_plane.apply(secret)
    del secret  # this test's own copy; what is left in memory below is the store's
    store = KubeStore(str(cluster.control_plane.kubeconfig(GATEKEEPER_USER)))
    try:
        wait_for(lambda: store.unavailable() is None and store.get("secrets", ns, "creds"), timeout=30)
        kept = store.get("secrets", ns, "creds")
        assert kept is not None and kept["type"] == "Opaque" and "data" not in kept
        assert kept["metadata"]["annotations"] == {}  # last-applied-configuration dropped
        assert not _strings_in_live_objects_containing((value, encoded))
    finally:
        store.close()
    for path in cluster.gatekeeper.workdir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert value.encode() not in data and encoded.encode() not in data, path


def _strings_in_live_objects_containing(needles: tuple[str, ...]) -> list[str]:
    """Every str held by a live dict, list or tuple of this process (the store's copy among them)."""
    found = []
    for obj in gc.get_objects():
        if obj is needles:
            continue
        values: Any = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list | tuple) else ()
        found += [v for v in values if isinstance(v, str) and any(n in v for n in needles)]
    return found
