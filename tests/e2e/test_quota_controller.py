"""`serve --quota-controller`: on a cluster whose kube-controller-manager runs no resourcequota
controller, gatekeeper syncs `status.hard` and recounts `status.used` from its own watches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import scenarios
from tests.e2e.cluster import AUTHORIZATION_CONFIG, Cluster
from tests.e2e.controlplane import CONTROLLERS
from tests.support.waiting import wait_for

WITHOUT_QUOTA = ",".join(c for c in CONTROLLERS.split(",") if c != "resourcequota")


@pytest.fixture(scope="module")
def gatekeeper_counts(cluster: Cluster) -> Iterator[Cluster]:
    cluster.use(AUTHORIZATION_CONFIG)
    cluster.control_plane.restart_controller_manager(WITHOUT_QUOTA)
    gatekeeper = cluster.gatekeeper
    gatekeeper.stop()
    gatekeeper.extra = ("--quota-controller", "--quota-sync-period", "1")
    gatekeeper.start()
    try:
        yield cluster
    finally:
        gatekeeper.stop()
        gatekeeper.extra = ()
        gatekeeper.start()
        cluster.control_plane.restart_controller_manager()


def test_gatekeeper_syncs_hard_and_recounts_what_really_exists(gatekeeper_counts: Cluster) -> None:
    cluster, ns = gatekeeper_counts, "quota-controller"
    scenarios.namespace(cluster, ns)
    assert scenarios.create(cluster, scenarios.pod("before-the-quota", ns)).ok
    cluster.kubectl("create", "configmap", "settings", "-n", ns, "--from-literal=mode=fast")
    assert scenarios.create(cluster, scenarios.quota("pods", ns, {"pods": "2", "count/configmaps": "5"})).ok
    synced = scenarios.quota_synced(cluster, ns, "pods")  # status.hard, written by gatekeeper
    assert synced["status"]["hard"] == {"count/configmaps": "5", "pods": "2"}
    # the pod and the ConfigMap that existed before the quota are counted
    wait_for(
        lambda: scenarios.used(cluster, ns, "pods") == {"count/configmaps": "1", "pods": "1"}, timeout=20
    )
    long_lived = scenarios.pod(
        "long-lived", ns, nodeName="node-that-never-answers", terminationGracePeriodSeconds=31536000
    )
    assert scenarios.create(cluster, long_lived).ok
    assert scenarios.used(cluster, ns, "pods")["pods"] == "2"
    assert scenarios.attempt(cluster, "delete", "pod", "long-lived", "-n", ns, "--wait=false").ok
    refused = scenarios.create(cluster, scenarios.pod("third", ns))
    assert "exceeded quota: pods" in refused.message, refused.message  # terminating, still counted
    cluster.kubectl("delete", "pod", "long-lived", "-n", ns, "--grace-period=0", "--force")
    wait_for(lambda: scenarios.used(cluster, ns, "pods")["pods"] == "1", timeout=20, interval=0.2)
    assert scenarios.create(cluster, scenarios.pod("third", ns)).ok
