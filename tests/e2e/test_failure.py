"""What the cluster does while gatekeeper is down, as webhook-config's defaults set it: admission
fails closed (`failurePolicy: Fail`, with a message that names the webhook), authorization falls
back to RBAC (`failurePolicy: NoOpinion`), and everything works again once gatekeeper is back,
without touching the API server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import scenarios
from tests.e2e.cluster import AUTHORIZATION_CONFIG, Cluster
from tests.support.waiting import wait_for

NS = "e2e-outage"


@pytest.fixture(scope="module")
def users(cluster: Cluster) -> Iterator[dict[str, object]]:
    """alice (client certificate) is granted everything by ABAC and nothing by RBAC; reader
    (client certificate) may read pods in the namespace by RBAC and nothing by ABAC."""
    cluster.use(AUTHORIZATION_CONFIG)
    scenarios.namespace(cluster, NS)
    cluster.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", NS)
    cluster.kubectl("create", "rolebinding", "reader", "--role=pod-reader", "--user=reader", "-n", NS)
    control_plane = cluster.control_plane
    yield {"alice": control_plane.kubeconfig("alice"), "reader": control_plane.kubeconfig("reader")}
    if cluster.gatekeeper.component is None or not cluster.gatekeeper.component.running():
        cluster.gatekeeper.start()


def can_list_pods(cluster: Cluster, kubeconfig: object) -> bool:
    return scenarios.attempt(cluster, "get", "pods", "-n", NS, kubeconfig=kubeconfig).ok


def test_an_outage_fails_admission_closed_and_authorization_over_to_rbac(
    cluster: Cluster, users: dict[str, object]
) -> None:
    assert can_list_pods(cluster, users["alice"])
    wait_for(lambda: can_list_pods(cluster, users["reader"]), timeout=10, interval=0.2)  # RBAC's informer
    cluster.gatekeeper.stop()
    try:
        refused = scenarios.create(cluster, scenarios.pod("during-outage", NS))
        assert not refused.ok
        assert 'failed calling webhook "mutate.gatekeeper.local"' in refused.message, refused.message
        assert "connection refused" in refused.message
        # alice's cached allow expires (authorizedTTL 2 s); then RBAC alone decides. What it does not
        # grant is refused, and because the webhook's error is part of the answer kube-apiserver
        # reports it as a 500 that quotes the error, not as a 403.
        wait_for(lambda: not can_list_pods(cluster, users["alice"]), timeout=20, interval=0.3)
        denied = scenarios.attempt(cluster, "get", "pods", "-n", NS, kubeconfig=users["alice"])
        assert denied.message.startswith("Error from server (InternalError)"), denied.message
        assert "/authorize?timeout=3s" in denied.message and "connection refused" in denied.message
        assert can_list_pods(cluster, users["reader"])  # RBAC still grants what it grants
    finally:
        cluster.gatekeeper.start()
    assert scenarios.create(cluster, scenarios.pod("after-outage", NS)).ok
    wait_for(lambda: can_list_pods(cluster, users["alice"]), timeout=20, interval=0.3)


def test_tokens_are_not_authenticated_while_gatekeeper_is_down(
    cluster: Cluster, users: dict[str, object]
) -> None:
    ceposta = cluster.token_kubeconfig("ceposta")
    assert scenarios.attempt(cluster, "get", "pods", "-n", NS, kubeconfig=ceposta).ok
    cluster.gatekeeper.stop()
    try:
        wait_for(
            lambda: (
                "Unauthorized"
                in scenarios.attempt(cluster, "get", "pods", "-n", NS, kubeconfig=ceposta).message
            ),
            timeout=20,
            interval=0.3,
        )
    finally:
        cluster.gatekeeper.start()
    wait_for(
        lambda: scenarios.attempt(cluster, "get", "pods", "-n", NS, kubeconfig=ceposta).ok,
        timeout=20,
        interval=0.3,
    )
