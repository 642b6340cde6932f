"""`gatekeeper quota reconcile`: a recount from live objects replaces what admission charged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.admission.quota.reconcile import resource_of
from gatekeeper.admission.quota_usage import with_usage
from gatekeeper.backends.sqlite.store import SQLiteStore
from gatekeeper.cli import main

NS = "team-a"


def live_pod(name: str, cpu: str, phase: str = "Running", namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
        "status": {"phase": phase},
    }


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    store = SQLiteStore(tmp_path / "gk.db")
    store.replace_all(
        [
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "compute", "namespace": NS},
                "spec": {"hard": {"pods": "10", "requests.cpu": "4", "count/deployments.apps": "5"}},
                "status": {
                    "hard": {"pods": "10", "requests.cpu": "4", "count/deployments.apps": "5"},
                    "used": {"pods": "7", "requests.cpu": "3", "count/deployments.apps": "2"},
                },
            },
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "secrets", "namespace": NS},
                "spec": {"hard": {"secrets": "3"}},
            },
        ]
    )
    store.close()
    return f"sqlite:///{tmp_path / 'gk.db'}"


def used(url: str) -> dict[str, dict[str, str]]:
    store = SQLiteStore(Path(url.removeprefix("sqlite:///")))
    try:
        return {o["metadata"]["name"]: o["status"]["used"] for o in with_usage(store)}
    finally:
        store.close()


def test_recount_replaces_usage_of_what_the_input_speaks_for(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    live = tmp_path / "live.json"
    live.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    live_pod("a", "500m"),
                    live_pod("b", "1", phase="Succeeded"),
                    live_pod("c", "2", namespace="other"),
                ],
            }
        )
    )
    assert main(["quota", "reconcile", "--store", store_url, str(live)]) == 0
    # deployments were not listed: their count is kept; no secrets listed means none
    assert used(store_url) == {
        "compute": {"pods": "1", "requests.cpu": "500m", "count/deployments.apps": "2"},
        "secrets": {"secrets": "0"},
    }
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["NAMESPACE", "QUOTA", "RESOURCE", "HARD", "USED", "BEFORE", "USED", "AFTER"]
    assert ["team-a", "compute", "requests.cpu", "4", "3", "500m"] in [line.split() for line in table]


def test_dry_run_writes_nothing(tmp_path: Path, store_url: str) -> None:
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"kind": "List", "apiVersion": "v1", "items": []}))
    assert main(["quota", "reconcile", "--dry-run", "--store", store_url, str(live)]) == 0
    assert used(store_url)["compute"]["pods"] == "7"


def test_bad_input_is_a_clear_error(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"kind": "List", "items": [{"kind": "Pod"}]}))
    assert main(["quota", "reconcile", "--store", store_url, str(live)]) == 1
    assert (
        "items[0]: expected a Kubernetes object with apiVersion, kind and metadata" in capsys.readouterr().err
    )
    missing = tmp_path / "missing.json"
    assert main(["quota", "reconcile", "--store", store_url, str(missing)]) == 2  # a usage error
    assert f"FILE {missing}: no such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kind", "resource"),
    [
        ("Pod", "pods"),
        ("Ingress", "ingresses"),
        ("NetworkPolicy", "networkpolicies"),
        ("Deployment", "deployments"),
        ("Gateway", "gateways"),
        ("Status", "statuses"),
    ],
)
def test_resource_of_kind(kind: str, resource: str) -> None:
    assert resource_of(kind) == resource
