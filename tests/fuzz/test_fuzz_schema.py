"""schemathesis against the running server's own OpenAPI schema (fetched with credentials).

Every operation gets generated requests, valid and invalid (schemathesis' positive and negative
modes), sent over real TLS with the kube-apiserver client certificate. No answer may be a 5xx,
carry a traceback, or refuse without a Kubernetes Status naming the problem.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.fuzz.http import server_args, server_problems
from tests.fuzz.inputs import Answer, check
from tests.support.server import Server, running_server

EXAMPLES = int(os.environ.get("GATEKEEPER_FUZZ_EXAMPLES", "40"))  # per operation; docs: Fuzzing
sent: list[int] = []


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("schemathesis")
    with running_server(workdir, server_args(workdir)) as server:
        yield server
        assert server_problems(server) == []
    statuses = {code: sent.count(code) for code in sorted(set(sent))}
    print(f"\nschemathesis: {len(sent)} requests, statuses {statuses}")


@pytest.fixture(scope="module")
def api_schema(fuzz_server: Server) -> Any:
    with fuzz_server.client() as c:
        response = c.get("/openapi.json")
    assert response.status_code == 200, response.text
    return schemathesis.openapi.from_dict(response.json())


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests(case: Any, fuzz_server: Server) -> None:
    cert = fuzz_server.default_cert
    assert cert is not None
    response = case.call(
        base_url=fuzz_server.url, verify=str(Path(fuzz_server.ca_file)), cert=cert, timeout=30
    )
    sent.append(response.status_code)
    case.validate_response(response, checks=[not_a_server_error])
    content_type = (response.headers.get("content-type") or [""])[0]
    answer = Answer(response.status_code, content_type, response.content or b"")
    problem = check(answer, case.method.upper())
    assert problem is None, (problem, case.path, response.status_code, response.text[:500])
