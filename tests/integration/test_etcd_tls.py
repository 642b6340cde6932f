"""etcd over TLS with client certificates (kube-apiserver's --etcd-cafile, --etcd-certfile,
--etcd-keyfile): a real etcd that requires a certificate of its CA, and a real gatekeeper serve."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatekeeper.store.base import StoreError
from gatekeeper.store.etcd import EtcdStore
from gatekeeper.store.etcd_options import EtcdOptions
from tests.support.etcd import Cluster, fresh_prefix, running_cluster
from tests.support.quota_reviews import CALLER, pod_review, state, used
from tests.support.server import running_server


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("etcd-tls"), tls=True) as cluster:
        yield cluster


def options(cluster: Cluster) -> EtcdOptions:
    tls = cluster.members[0].tls
    assert tls is not None
    return EtcdOptions(
        endpoints=(("127.0.0.1", cluster.members[0].client_port),), prefix=fresh_prefix(),
        cafile=tls.ca, certfile=tls.client.cert, keyfile=tls.client.key, timeout=1,
    )


def test_the_store_presents_its_client_certificate(tls_etcd: Cluster) -> None:
    store = EtcdStore(options(tls_etcd))
    try:
        store.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        assert store.get("namespaces", "", "team-a") is not None
    finally:
        store.close()


def test_without_a_client_certificate_etcd_is_unavailable_and_says_why(tls_etcd: Cluster) -> None:
    store = EtcdStore(dataclasses.replace(options(tls_etcd), certfile=None, keyfile=None))
    try:
        with pytest.raises(StoreError, match="etcd is unavailable") as raised:
            store.get("namespaces", "", "team-a")
        assert "certificate" in str(raised.value).lower() or "ssl" in str(raised.value).lower()
    finally:
        store.close()


def test_serve_with_the_etcd_tls_flags(tls_etcd: Cluster, tmp_path: Path) -> None:
    tls = tls_etcd.members[0].tls
    assert tls is not None
    (tmp_path / "abac.jsonl").write_text(CALLER)
    (tmp_path / "state.yaml").write_text(state({"pods": "3"}))
    args = [
        "--authorization-policy-file", "abac.jsonl", "--state", "state.yaml",
        "--enable-admission-plugins", "NamespaceLifecycle,ResourceQuota",
        "--store", tls_etcd.url, "--etcd-prefix", fresh_prefix(), "--etcd-cafile", str(tls.ca),
        "--etcd-certfile", str(tls.client.cert), "--etcd-keyfile", str(tls.client.key),
    ]
    with running_server(tmp_path, args) as server, server.client() as client:
        deadline = time.monotonic() + 20
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").text
            time.sleep(0.1)
        response = client.post("/admit", json=pod_review(str(uuid.uuid4()), "p"))
        assert response.json()["response"]["allowed"], response.text
        assert used(client) == {"pods": "1"}
