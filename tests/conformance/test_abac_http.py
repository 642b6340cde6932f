"""Every ABAC conformance case through POST /authorize on a real server over TLS.

One server serves all cases: each case's policy is written to the watched file and applied with
SIGHUP (the reload path a real operator uses), and /readyz says when the reload has happened.
A line letting the test's caller (kube-apiserver) reach /authorize is appended to every policy.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conformance.abac_corpus import BAD_POLICIES, CASES, params, policy_bytes
from tests.support.server import Server, running_server

CALLER_LINE = (
    b'{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    b'"spec":{"user":"kube-apiserver","nonResourcePath":"/authorize"}}'
)
POLICY_CHECK = "authorization policy"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, httpx.Client, Path]]:
    workdir = tmp_path_factory.mktemp("abac-http")
    policy = workdir / "abac.jsonl"
    policy.write_bytes(CALLER_LINE + b"\n")
    with running_server(workdir, ["--authorization-policy-file", str(policy)]) as srv, srv.client() as client:
        yield srv, client, policy


def _apply(
    server: tuple[Server, httpx.Client, Path], content: bytes, refused: bool = False
) -> dict[str, Any]:
    """Write the policy, SIGHUP the server, and return the policy's /readyz entry after the reload.

    The file poller may still reload the previous write after this one starts (it saw that
    write's mtime late), which moves the reload count without reading this file; so for a policy
    that must be refused the wait is for a failure, the one outcome only a bad file can cause."""
    srv, client, policy = server
    before = client.get("/readyz").json()["checks"][POLICY_CHECK]
    policy.write_bytes(content)
    os.kill(srv.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after: dict[str, Any] = client.get("/readyz").json()["checks"][POLICY_CHECK]
        if after["failures"] != before["failures"] or (not refused and after["reloads"] != before["reloads"]):
            return after
        time.sleep(0.01)
    raise AssertionError(f"the server did not {'refuse' if refused else 'reload'} the policy after SIGHUP")


def _with_caller(policy: bytes) -> bytes:
    return policy + (b"" if policy.endswith(b"\n") or not policy else b"\n") + CALLER_LINE + b"\n"


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: dict[str, Any], server: tuple[Server, httpx.Client, Path]) -> None:
    check = _apply(server, _with_caller(policy_bytes(case)))
    assert check["ok"], check
    response = server[1].post("/authorize?timeout=30s", json=case["request"])
    assert response.status_code == 200, response.text
    review = response.json()
    assert review["apiVersion"] == case["request"]["apiVersion"]
    assert review["kind"] == "SubjectAccessReview"
    assert review["status"]["allowed"] is case["expect_allowed"]
    assert "denied" not in review["status"]


@pytest.mark.parametrize("case", params(BAD_POLICIES))
def test_bad_policy_is_refused_and_the_last_good_one_stays(
    case: dict[str, Any], server: tuple[Server, httpx.Client, Path]
) -> None:
    good = next(c for c in CASES if c["expect_allowed"])
    assert _apply(server, _with_caller(policy_bytes(good)))["ok"]
    check = _apply(server, _with_caller(policy_bytes(case)), refused=True)
    assert not check["ok"]
    policy = server[2]
    where = f"{policy}:{case['line']}: " if case["line"] is not None else f"{policy}: "
    assert check["lastError"].startswith(where), check["lastError"]
    response = server[1].post("/authorize", json=good["request"])
    assert response.json()["status"]["allowed"] is True  # the last good policy is still in force
