"""What a plugin's failure answers on a real server: a bug is a logged 500 naming the plugin,
never a refusal that blames the object; a refusal is still a 200 with allowed: false."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.test_admission_server import policy_args
from tests.support.admission import pod, review
from tests.support.buggy_plugin import LABEL, NAME
from tests.support.server import Server, running_server

Served = tuple[Server, httpx.Client]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("buggy-plugin")
    args = ["--enable-admission-plugins", NAME, "--store", "memory://",
            *policy_args(workdir)]
    with running_server(workdir, args, module="tests.support.buggy_plugin") as srv, srv.client() as client:
        yield srv, client


def test_a_bug_in_a_plugin_is_a_logged_500_that_names_the_plugin(server: Served) -> None:
    srv, client = server
    answer = client.post("/admit?timeout=10s", json=review(obj=pod()))
    assert answer.status_code == 500, answer.text
    assert answer.json()["reason"] == "InternalError"
    assert "KeyError" not in answer.text  # the caller learns nothing of our internals
    log = srv.log()
    assert "KeyError: 'labels'" in log and f"raised in admission plugin {NAME}" in log


def test_the_plugin_works_where_it_has_no_bug(server: Served) -> None:
    _srv, client = server
    labelled = pod()
    labelled["metadata"]["labels"] = {LABEL: "blue"}
    answer = client.post("/mutate?timeout=10s", json=review(obj=labelled))
    assert answer.status_code == 200, answer.text
    response = answer.json()["response"]
    assert response["allowed"] is True
    patch = json.loads(base64.b64decode(response["patch"]))
    assert patch == [{"op": "add", "path": "/metadata/annotations", "value": {"owner": "blue"}}]
