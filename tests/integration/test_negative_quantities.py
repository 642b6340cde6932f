"""Finding 8: a negative quantity is refused on every path that reads one, charging and not.

The API server's validation never lets a negative request or a negative quota quantity be stored,
so gatekeeper meeting one is meeting a forged or corrupt input: it refuses it with a clear message
instead of counting it (a negative old object subtracted from an UPDATE's charge, or a negative
status.used, would otherwise move usage the wrong way). A DELETE gives nothing back at all.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatekeeper.cli import main
from tests.support.quota_reviews import CALLER, NAMESPACE, pod_review, state, used
from tests.support.server import Server, running_server
from tests.support.waiting import wait_for

HARD = {"requests.cpu": "4", "limits.cpu": "4", "pods": "10"}
NEGATIVE_TEXT = "is negative for resource(s): cpu,limits.cpu,requests.cpu"


def with_old(review: dict[str, Any], operation: str, old_cpu: str, new_cpu: str | None) -> dict[str, Any]:
    """The review as an UPDATE (a pods/resize, which quota charges) or a DELETE whose stored (old)
    object requests `old_cpu`."""
    changed = copy.deepcopy(review)
    request = changed["request"]
    old = copy.deepcopy(request["object"])
    old["metadata"]["resourceVersion"] = "7"
    for key in ("requests", "limits"):
        old["spec"]["containers"][0]["resources"][key]["cpu"] = old_cpu
    request["operation"], request["oldObject"] = operation, old
    request["subResource"] = "resize" if operation == "UPDATE" else ""
    if new_cpu is None:
        request["object"] = None
    else:
        for key in ("requests", "limits"):
            request["object"]["spec"]["containers"][0]["resources"][key]["cpu"] = new_cpu
    return changed


def answer(client: httpx.Client, review: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/validate", json=review)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["response"]
    return result


Served = tuple[Server, httpx.Client, Path]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    (tmp_path / "abac.jsonl").write_text(CALLER)
    (tmp_path / "state.yaml").write_text(state(HARD))
    args = ["--authorization-policy-file", "abac.jsonl", "--state", "state.yaml", "--store",
            "sqlite:///gatekeeper.db", "--enable-admission-plugins", "ResourceQuota",
            "--reload-settle", "0.2"]
    with running_server(tmp_path, args) as server, server.client() as client:
        assert answer(client, pod_review("uid-1", "web", cpu="500m"))["allowed"]
        assert used(client)["requests.cpu"] == "500m"
        yield server, client, tmp_path / "state.yaml"


def test_a_delete_whose_old_object_is_negative_changes_no_usage(served: Served) -> None:
    _, client, _ = served
    before = used(client)
    deleting = with_old(pod_review("uid-2", "web", cpu="1"), "DELETE", old_cpu="-2", new_cpu=None)
    answer(client, deleting)
    assert used(client) == before


def test_an_update_whose_old_object_is_negative_is_refused(served: Served) -> None:
    _, client, _ = served
    before = used(client)
    updating = with_old(pod_review("uid-3", "web", cpu="500m"), "UPDATE", old_cpu="-2", new_cpu="500m")
    result = answer(client, updating)
    assert not result["allowed"] and result["status"]["code"] == 403
    assert result["status"]["message"] == (
        f'pods "web" is forbidden: quota usage of the previous version {NEGATIVE_TEXT}'
    )
    assert used(client) == before


def test_a_create_asking_for_a_negative_quantity_is_refused(served: Served) -> None:
    _, client, _ = served
    before = used(client)
    result = answer(client, pod_review("uid-4", "neg", cpu="-1"))
    assert not result["allowed"] and result["status"]["message"].endswith(f"quota usage {NEGATIVE_TEXT}")
    assert used(client) == before


def test_a_quota_created_with_a_negative_hard_is_refused(served: Served) -> None:
    _, client, _ = served
    quota = {"apiVersion": "v1", "kind": "ResourceQuota",
             "metadata": {"name": "neg", "namespace": NAMESPACE}, "spec": {"hard": {"pods": "-5"}}}
    review = pod_review("uid-5", "neg")
    review["request"].update(
        name="neg", object=quota, kind={"group": "", "version": "v1", "kind": "ResourceQuota"},
        resource={"group": "", "version": "v1", "resource": "resourcequotas"},
    )
    result = answer(client, review)
    assert not result["allowed"] and result["status"]["code"] == 400
    assert "spec.hard.pods: must be greater than or equal to 0" in result["status"]["message"]


def test_a_state_manifest_with_negative_usage_is_refused_and_the_last_good_stays(
    served: Served,
) -> None:
    _, client, state_file = served
    before = used(client)
    negative = state(HARD) + "status:\n  used: {requests.cpu: \"-3\"}\n"
    staging = state_file.with_name(".state.new")
    staging.write_text(negative)
    os.replace(staging, state_file)
    check = wait_for(lambda: client.get("/readyz").json()["checks"]["state manifests"].get("lastError"))
    assert check == "state.yaml: document 1: status.used.requests.cpu: must be greater than or equal to 0"
    assert used(client) == before


def _negative_pod_list(path: Path) -> Path:
    review = pod_review("uid-x", "neg", cpu="-1")
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [review["request"]["object"]]}))
    return path


def test_offline_admit_refuses_the_update_and_gives_nothing_back_on_delete(tmp_path: Path) -> None:
    state_file = tmp_path / "state.yaml"
    seeded = 'status:\n  used: {requests.cpu: "1", limits.cpu: "1", pods: "1"}\n'
    state_file.write_text(state(HARD) + seeded)
    reviews = [
        with_old(pod_review("u-1", "web", cpu="500m"), "UPDATE", old_cpu="-2", new_cpu="500m"),
        with_old(pod_review("u-2", "web", cpu="1"), "DELETE", old_cpu="-2", new_cpu=None),
    ]
    (tmp_path / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    out = tmp_path / "after.json"
    command = [sys.executable, "-m", "gatekeeper.cli", "admit", "--state", str(state_file), "--state-out",
               str(out), "--enable-admission-plugins", "ResourceQuota", str(tmp_path / "reviews.jsonl")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    answers = [json.loads(line)["response"] for line in done.stdout.splitlines()]
    assert [a["allowed"] for a in answers] == [False, True], done.stderr
    assert NEGATIVE_TEXT in answers[0]["status"]["message"]
    quotas = [o for o in json.loads(out.read_text())["items"] if o["kind"] == "ResourceQuota"]
    assert quotas[0]["status"]["used"] == {"limits.cpu": "1", "pods": "1", "requests.cpu": "1"}


def test_quota_reconcile_refuses_a_live_object_with_a_negative_request(tmp_path: Path, capsys: Any) -> None:
    store = f"sqlite:///{tmp_path / 'gatekeeper.db'}"
    (tmp_path / "state.yaml").write_text(state(HARD))
    assert main(["state", "sync", "--store", store, str(tmp_path / "state.yaml")]) == 0
    live = _negative_pod_list(tmp_path / "live.json")
    assert main(["quota", "reconcile", "--store", store, str(live)]) == 1
    err = capsys.readouterr().err
    assert f"{live}: document 0, items[0]: quota usage {NEGATIVE_TEXT}" in err, err
