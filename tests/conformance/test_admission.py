"""Every admission conformance case through `gatekeeper admit` and through POST /admit on a
real server over TLS.

Each case tests one plugin in isolation, so each runs with only that plugin enabled. The CLI
runs in-process (gatekeeper.cli.main) on real files. Over HTTP there is one server per plugin,
with a SQLite store; each case's state is loaded into that store with `gatekeeper state sync`
(the path an operator uses) before its review is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatekeeper.cli import main
from tests.conformance.admission_corpus import (
    CASES,
    check,
    check_quota_used,
    params,
    state_list,
)
from tests.support.server import Server, running_server

CALLER_POLICY = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"*"}}\n'
)


def _quotas_by_name(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {q["metadata"]["name"]: q for q in items if q.get("kind") == "ResourceQuota"}


@pytest.mark.parametrize("case", params(CASES))
def test_cli(case: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state, review, state_out = tmp_path / "state.json", tmp_path / "review.json", tmp_path / "after.json"
    state.write_text(json.dumps(state_list(case)))
    review.write_text(json.dumps(case["request"]))
    code = main([
        "admit", "--state", str(state), "--enable-admission-plugins", case["plugin"],
        "--state-out", str(state_out), str(review),
    ])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1, out
    check(case, json.loads(lines[0]))
    check_quota_used(case, _quotas_by_name(json.loads(state_out.read_text())["items"]))


class PluginServers:
    """One real server per plugin, started on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: dict[str, tuple[Server, httpx.Client, str]] = {}
        self._stack: list[Any] = []

    def get(self, plugin: str) -> tuple[Server, httpx.Client, str]:
        if plugin not in self.servers:
            workdir = self.root / plugin
            workdir.mkdir()
            policy = workdir / "abac.jsonl"
            policy.write_text(CALLER_POLICY)
            store = f"sqlite:///{workdir / 'state.db'}"
            context = running_server(workdir, [
                "--authorization-policy-file", str(policy), "--store", store,
                "--enable-admission-plugins", plugin,
            ])
            server = context.__enter__()
            self._stack.append(context)
            client = server.client()
            self._stack.append(client)
            self.servers[plugin] = (server, client, store)
        return self.servers[plugin]

    def close(self) -> None:
        for item in reversed(self._stack):
            item.__exit__(None, None, None)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginServers]:
    pool = PluginServers(tmp_path_factory.mktemp("admission-http"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.mark.parametrize("case", params(CASES))
def test_http(case: dict[str, Any], servers: PluginServers, tmp_path: Path,
              capsys: pytest.CaptureFixture[str]) -> None:
    _server, client, store_url = servers.get(case["plugin"])
    state = tmp_path / "state.json"
    state.write_text(json.dumps(state_list(case)))
    synced = main(["state", "sync", "--store", store_url, "--allow-empty", str(state)])
    assert synced == 0, capsys.readouterr().err
    response = client.post("/admit?timeout=10s", json=case["request"])
    assert response.status_code == 200, response.text
    check(case, response.json())
    capsys.readouterr()
    assert main(["state", "show", "--store", store_url, "-o", "json"]) == 0
    check_quota_used(case, _quotas_by_name(json.loads(capsys.readouterr().out)["items"]))
