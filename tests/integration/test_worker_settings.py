"""Worker processes get serve's settings from serve itself (pickled with uvicorn's Config into the
pipe that starts each worker), not from the environment, which every process a worker starts would
inherit: a flag given to serve is in force in every worker, and no worker's environment holds it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.processes import process_tree
from tests.support.server import running_server

POLICY = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"*"}}\n'
)
DEPTH = 4
WORKERS = 2


def _nested_review(levels: int) -> bytes:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return json.dumps({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "alice", "nonResourceAttributes": {"path": "/version", "verb": "get"}},
        "x": value,
    }).encode()


def _environment(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (entry.decode(errors="replace").partition("=") for entry in entries if entry)
    return {name: value for name, _, value in pairs}


def test_every_worker_runs_on_serves_flags_and_none_holds_them_in_its_environment(tmp_path: Path) -> None:
    (tmp_path / "policy.jsonl").write_text(POLICY)
    args = ["--authorization-policy-file", "policy.jsonl", "--store", "memory://",
            "--max-json-depth", str(DEPTH), "--workers", str(WORKERS)]
    with running_server(tmp_path, args) as server:
        pids = process_tree(server.process.pid)
        assert len(pids) >= WORKERS + 1  # the master and its workers
        for _ in range(4 * WORKERS):  # a new connection each: the workers take turns accepting
            with server.client() as client:
                response = client.post("/authorize", content=_nested_review(DEPTH),
                                       headers={"Content-Type": "application/json"})
            assert response.status_code == 400, response.text
            assert f"deeper than {DEPTH} levels" in response.json()["message"]
        for pid in pids:
            environment = _environment(pid)
            assert not [name for name in environment if name.startswith("GATEKEEPER_SETTINGS")]
            assert not [name for name, value in environment.items() if "max_json_depth" in value], pid
