"""The request limits of a real server: body size (--max-request-bytes) and nesting (--max-json-depth).

Each refusal is a 4xx Kubernetes Status that names the limit; a body within the limits is
answered normally.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.server import Server, running_server

POLICY = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"*"}}\n'
)
MAX_BYTES = 20_000
MAX_DEPTH = 10


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("limits")
    (workdir / "policy.jsonl").write_text(POLICY)
    args = ["--authorization-policy-file", "policy.jsonl", "--store", "memory://",
            "--max-request-bytes", str(MAX_BYTES), "--max-json-depth", str(MAX_DEPTH)]
    with running_server(workdir, args) as running:
        yield running


def sar(extra: Any = None, padding: str = "") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "alice", "nonResourceAttributes": {"path": "/version", "verb": "get"}},
        "metadata": {"annotations": {"pad": padding}},
    }
    if extra is not None:
        doc["x"] = extra
    return doc


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def post(server: Server, body: bytes, **kwargs: Any) -> httpx.Response:
    with server.client() as c:
        return c.post("/authorize", content=body, headers={"Content-Type": "application/json"}, **kwargs)


def assert_status(response: httpx.Response, code: int, words: str) -> None:
    assert response.status_code == code, response.text
    body = response.json()
    assert body["kind"] == "Status" and body["code"] == code
    assert words in body["message"], body["message"]


def test_nesting_up_to_the_limit_is_answered_one_more_is_refused(server: Server) -> None:
    at_limit = json.dumps(sar(nested(MAX_DEPTH - 1))).encode()  # the document itself is one level
    assert post(server, at_limit).status_code == 200
    over = json.dumps(sar(nested(MAX_DEPTH))).encode()
    assert_status(post(server, over), 400, f"JSON nesting is deeper than {MAX_DEPTH} levels")


def test_nesting_beyond_what_the_parser_takes_is_refused(server: Server) -> None:
    deep = b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_status(post(server, deep), 413, f"larger than {MAX_BYTES} bytes")
    deep = b'{"x":' + b"[" * 2000 + b"]" * 2000 + b"}"
    assert_status(post(server, deep), 400, "not valid JSON")


def test_a_body_over_the_size_limit_is_a_413_with_or_without_content_length(server: Server) -> None:
    fits = json.dumps(sar(padding="p" * (MAX_BYTES - 400))).encode()
    assert len(fits) <= MAX_BYTES and post(server, fits).status_code == 200
    over = json.dumps(sar(padding="p" * MAX_BYTES)).encode()
    assert_status(post(server, over), 413, f"larger than {MAX_BYTES} bytes")
    chunks = iter([over[i : i + 1000] for i in range(0, len(over), 1000)])  # chunked: no Content-Length
    assert_status(_chunked(server, chunks), 413, "larger than")


def _chunked(server: Server, chunks: Iterator[bytes]) -> httpx.Response:
    with server.client() as c:
        return c.post("/authorize", content=chunks, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "request body is empty"),
        (b"[]", "expected a JSON object, got array"),
        (b'{"kind": "\xff"}', "not valid JSON"),
        (b'{"kind": "SubjectAccessReview"', "not valid JSON"),
        (b'{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": []}',
         "spec: expected an object, got array"),
    ],
    ids=["empty", "array", "invalid-utf8", "truncated", "wrong-type"],
)
def test_each_bad_body_gets_a_400_naming_the_problem(server: Server, body: bytes, words: str) -> None:
    assert_status(post(server, body), 400, words)
