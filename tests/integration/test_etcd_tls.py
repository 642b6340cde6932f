"""etcd over TLS with client certificates (kube-apiserver's --etcd-cafile, --etcd-certfile,
--etcd-keyfile): a real etcd that requires a certificate of its CA, and a real gatekeeper serve."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatekeeper.admission.state import StoreError
from gatekeeper.backends.etcd.options import EtcdOptions
from gatekeeper.backends.etcd.store import EtcdStore
from gatekeeper.cli import main
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


def test_offline_commands_take_the_same_etcd_flags_as_serve(
    tls_etcd: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = tls_etcd.members[0].tls
    assert tls is not None
    certificates = ["--etcd-cafile", str(tls.ca), "--etcd-certfile", str(tls.client.cert),
                    "--etcd-keyfile", str(tls.client.key)]
    flags = ["--store", tls_etcd.url, "--etcd-prefix", fresh_prefix(), *certificates]
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"},
         "status": {"phase": "Active"}},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute", "namespace": "team-a"},
         "spec": {"hard": {"pods": "5"}}, "status": {"hard": {"pods": "5"}, "used": {"pods": "4"}}},
    ]}))
    assert main(["state", "sync", *flags, str(live)]) == 0
    capsys.readouterr()
    assert main(["state", "show", *flags, "-o", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [o["metadata"]["name"] for o in shown["items"]] == ["team-a", "compute"]

    pods = tmp_path / "pods.json"
    pods.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": []}))
    assert main(["quota", "reconcile", *flags, "--allow-empty", str(pods)]) == 0  # no pods: 4 -> 0
    table = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["team-a", "compute", "pods", "5", "4", "0"] in table

    assert main(["state", "show", "--store", tls_etcd.url, *certificates, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == []  # another prefix, another view
    assert main(["state", "show", "--store", tls_etcd.url, "-o", "json"]) != 0  # no certificate
    assert "etcd" in capsys.readouterr().err
