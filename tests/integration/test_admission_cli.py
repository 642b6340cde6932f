"""`gatekeeper admit` and `gatekeeper state` on real files (in-process through gatekeeper.cli.main)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gatekeeper.cli import main
from tests.support.admission import pod, review

STATE = """\
apiVersion: v1
kind: Namespace
metadata: {name: team}
status: {phase: Active}
---
apiVersion: v1
kind: Namespace
metadata: {name: leaving}
status: {phase: Terminating}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: team}
imagePullSecrets: [{name: registry}]
"""
PLUGINS = "NamespaceLifecycle,ServiceAccount"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state.yaml"
    path.write_text(STATE)
    return path


def test_json_lines_in_one_response_per_line_out(state: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    reviews = tmp_path / "reviews.jsonl"
    lines = [review(), review(namespace="leaving", obj=pod(namespace="leaving")), {"kind": "nonsense"}]
    lines[2]["request"] = {"uid": "bad-1"}
    reviews.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    code = main(["admit", "--state", str(state), "--enable-admission-plugins", PLUGINS, str(reviews)])
    out, err = capsys.readouterr()
    responses = [json.loads(line)["response"] for line in out.splitlines()]
    assert code == 1  # one review could not be read
    assert [r["allowed"] for r in responses] == [True, False, False]
    assert responses[1]["status"]["code"] == 403
    assert responses[2] == {"uid": "bad-1", "allowed": False, "status": {
        "metadata": {}, "status": "Failure", "reason": "BadRequest", "code": 400,
        "message": "not a valid AdmissionReview: apiVersion: required field is missing"}}
    assert f"{reviews}:3: apiVersion: required field is missing" in err


def test_state_out_writes_the_store_after_the_last_review(state: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    reviews = tmp_path / "reviews.json"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "type": "Opaque"}
    reviews.write_text(json.dumps(review("CREATE", "secrets", "Secret", name="db", obj=secret)))
    out_file = tmp_path / "after.yaml"
    assert main(["admit", "--state", str(state), "--enable-admission-plugins", PLUGINS,
                 "--state-out", str(out_file), str(reviews)]) == 0
    after = yaml.safe_load(out_file.read_text())
    assert after["kind"] == "List"
    names = [(o["kind"], o["metadata"]["name"]) for o in after["items"]]
    assert ("Secret", "db") in names and ("Namespace", "leaving") in names


def test_the_human_form_prints_the_decision_and_the_mutated_object(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    obj = tmp_path / "pod.yaml"
    obj.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n"
                   "spec:\n  containers: [{name: app, image: nginx}]\n")
    assert main(["admit", "--state", str(state), "--enable-admission-plugins", PLUGINS,
                 "--object", str(obj), "--namespace", "team", "--user", "alice"]) == 0
    out = capsys.readouterr().out
    decision, document = out.split("---\n", 1)
    assert decision == "allowed\n"
    mutated = yaml.safe_load(document)
    assert mutated["spec"]["serviceAccountName"] == "default"
    assert mutated["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    assert main(["admit", "--state", str(state), "--enable-admission-plugins", PLUGINS,
                 "--object", str(obj), "--namespace", "leaving"]) == 1
    assert capsys.readouterr().out.startswith(
        'denied (403 Forbidden): pods "web" is forbidden: unable to create new content in namespace leaving'
    )


def test_a_bad_manifest_or_plugin_is_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Namespace\nmetadata: {name: a}\n---\nkind: LimitRange\nmetadata: {name: l}\n")
    (tmp_path / "none.json").write_text("")
    assert main(["admit", "--state", str(bad), str(tmp_path / "none.json")]) == 1
    assert capsys.readouterr().err == (
        f"gatekeeper admit: {bad}: document 1: metadata.namespace: a LimitRange must name its namespace\n"
    )
    assert main(["admit", "--enable-admission-plugins", "Nope", "-"]) == 2
    assert "known plugins: NamespaceLifecycle" in capsys.readouterr().err


def test_state_sync_replaces_the_view_and_show_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}, "status": {"phase": "Active"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}, "status": {"phase": "Active"}},
    ]}))
    assert main(["state", "sync", "--store", store, str(first)]) == 0
    assert "synced 2 objects" in capsys.readouterr().err
    second = tmp_path / "second.json"
    second.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}},
    ]}))
    assert main(["state", "sync", "--store", store, str(second)]) == 0
    capsys.readouterr()
    assert main(["state", "show", "--store", store, "-o", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [o["metadata"]["name"] for o in shown["items"]] == ["c"]
    broken = tmp_path / "broken.json"
    broken.write_text('{"kind": "List", "items": [{"kind": "Pod", "metadata": {"name": "p"}}]}')
    assert main(["state", "sync", "--store", store, str(broken)]) == 1
    assert f"{broken}: document 0, items[0]: kind: expected one of" in capsys.readouterr().err
