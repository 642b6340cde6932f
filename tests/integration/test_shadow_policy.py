"""The shadow policy of a real `gatekeeper serve` (issue 18, item 3): real TLS, real files.

`--shadow-authorization-policy-file` decides every SubjectAccessReview a second time. The answer is
always the live policy's: a server without the shadow answers byte for byte the same. How the two
compare is counted in /metrics, each disagreement is audited with both reasons, and the shadow file
reloads like the policy (poll, SIGHUP), a broken version refused and shown on /readyz without
un-readying the server.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import waiting
from tests.support.server import Server, free_port, running_server

POLICY = "\n".join([
    '{"user":"alice","namespace":"team-a","resource":"pods"}',
    '{"user":"bob","namespace":"*","resource":"*","readonly":true}',
]) + "\n"
SHADOW = "\n".join([
    '{"user":"alice","namespace":"team-a","resource":"pods","readonly":true}',  # alice loses writes
    '{"user":"bob","namespace":"*","resource":"*","readonly":true}',
    '{"user":"carol","namespace":"team-a","resource":"pods"}',  # carol gains pods
]) + "\n"
DAVE = '{"user":"dave","namespace":"*","resource":"configmaps"}\n'
SHADOW_CHECK = "shadow authorization policy"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Setup:
    server: Server
    workdir: Path

    @property
    def shadow(self) -> Path:
        return self.workdir / "shadow.jsonl"

    @property
    def audit_path(self) -> Path:
        return self.workdir / "audit.log"

    def decide(self, user: str, verb: str = "get", resource: str = "pods") -> dict[str, Any]:
        with self.server.client() as client:
            response = client.post("/authorize", json=sar(user, verb, resource))
        assert response.status_code == 200, response.text
        status: dict[str, Any] = response.json()["status"]
        return status

    def metrics(self) -> Samples:
        with self.server.client() as client:
            response = client.get("/metrics")
        assert response.status_code == 200, response.text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    def readyz(self) -> httpx.Response:
        with self.server.client() as client:
            return client.get("/readyz")

    def audit_lines(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]


def sar(user: str, verb: str = "get", resource: str = "pods", namespace: str = "team-a") -> dict[str, Any]:
    return {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["dev"],
                 "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource}},
    }


def shadow_count(metrics: Samples, result: str) -> float:
    return metrics[("gatekeeper_shadow_decisions_total", (("result", result),))]


def shadow_sha(metrics: Samples) -> str:
    """The sha256 label of the one gatekeeper_shadow_policy_info sample."""
    (sha,) = [dict(labels)["sha256"] for name, labels in metrics if name == "gatekeeper_shadow_policy_info"]
    return sha


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_files(workdir: Path) -> list[str]:
    (workdir / "policy.jsonl").write_text(POLICY)
    (workdir / "shadow.jsonl").write_text(SHADOW)
    return ["--authorization-policy-file", "policy.jsonl", "--store", "memory://", "--state", "/dev/null",
            "--audit-log-path", "audit.log"]


def shadow_args(workdir: Path) -> list[str]:
    return [*write_files(workdir), "--shadow-authorization-policy-file", "shadow.jsonl"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("shadow")
    with running_server(workdir, shadow_args(workdir)) as server:
        yield Setup(server, workdir)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """The same policy, no shadow."""
    workdir = tmp_path_factory.mktemp("no-shadow")
    with running_server(workdir, write_files(workdir)) as server:
        yield Setup(server, workdir)


REQUESTS = [  # (user, verb, resource): how the shadow compares
    ("alice", "get", "pods"),  # agree, both allow (by different lines)
    ("alice", "delete", "pods"),  # shadow_denies
    ("carol", "create", "pods"),  # shadow_allows
    ("dave", "get", "pods"),  # agree, neither allows
    ("bob", "list", "secrets"),  # agree, both allow
]


def test_the_answer_is_the_live_policys_whatever_the_shadow_says(setup: Setup, plain: Setup) -> None:
    for user, verb, resource in REQUESTS:
        review = sar(user, verb, resource)
        with setup.server.client() as shadowed, plain.server.client() as unshadowed:
            answered = shadowed.post("/authorize", json=review)
            reference = unshadowed.post("/authorize", json=review)
        assert answered.status_code == reference.status_code == 200
        assert answered.content == reference.content, (user, verb)  # byte for byte
    assert setup.decide("alice", "delete") == {"allowed": True, "reason": "policy.jsonl:1"}
    assert setup.decide("carol", "create")["allowed"] is False


def test_agreements_and_disagreements_are_counted_by_direction(setup: Setup) -> None:
    before = setup.metrics()
    for user, verb, resource in REQUESTS:
        setup.decide(user, verb, resource)
    after = setup.metrics()
    added = {result: shadow_count(after, result) - shadow_count(before, result)
             for result in ("agree", "shadow_allows", "shadow_denies")}
    assert added == {"agree": 3, "shadow_allows": 1, "shadow_denies": 1}


def test_each_disagreement_is_audited_with_both_reasons_and_the_attributes(setup: Setup) -> None:
    setup.decide("alice", "patch")
    setup.decide("carol", "watch")
    setup.decide("bob", "watch", "configmaps")

    def written() -> dict[tuple[str, str], dict[str, Any]]:
        lines = {(line["user"], line["attributes"]["verb"]): line for line in setup.audit_lines()}
        return lines if {("alice", "patch"), ("carol", "watch"), ("bob", "watch")} <= lines.keys() else {}

    lines = wait_for(written)
    sha = sha256(setup.shadow)
    lost = lines[("alice", "patch")]
    assert lost["decision"] == "allowed" and lost["reason"] == "policy.jsonl:1"
    assert lost["shadow"] == {"result": "shadow_denies", "decision": "no_opinion",
                              "reason": "No policy matched.", "sha256": sha}
    assert lost["attributes"] == {"verb": "patch", "namespace": "team-a", "resource": "pods"}
    gained = lines[("carol", "watch")]
    assert gained["decision"] == "no_opinion" and gained["reason"] == "No policy matched."
    assert gained["shadow"] == {"result": "shadow_allows", "decision": "allowed",
                                "reason": "shadow.jsonl:3", "sha256": sha}
    assert "shadow" not in lines[("bob", "watch")]  # an agreement is counted, not audited apart


def test_the_shadow_policys_identity_is_in_the_metrics_and_on_readyz(setup: Setup) -> None:
    metrics = setup.metrics()
    info = ("gatekeeper_shadow_policy_info", (("file", "shadow.jsonl"), ("sha256", sha256(setup.shadow))))
    assert metrics[info] == 1
    assert metrics[("gatekeeper_shadow_policy_rules", ())] == 3
    assert metrics[("gatekeeper_shadow_policy_loaded_timestamp_seconds", ())] > 0
    assert metrics[("gatekeeper_policy_rules", ())] == 2  # the live one's own, beside it
    assert metrics[("gatekeeper_reload_healthy", (("file", SHADOW_CHECK),))] == 1
    check = setup.readyz().json()["checks"][SHADOW_CHECK]
    assert check == {"ok": True, "reloads": 0, "failures": 0}


def test_a_changed_shadow_is_polled_in_and_a_broken_one_keeps_the_last_good(tmp_path: Path) -> None:
    with running_server(tmp_path, [*shadow_args(tmp_path), "--reload-settle", "0.2"]) as server:
        setup = Setup(server, tmp_path)
        assert setup.decide("dave", "get", "configmaps")["allowed"] is False
        before = shadow_count(setup.metrics(), "shadow_allows")

        setup.shadow.write_text(SHADOW + DAVE)
        good = sha256(setup.shadow)
        wait_for(lambda: shadow_sha(setup.metrics()) == good)
        assert setup.metrics()[("gatekeeper_shadow_policy_rules", ())] == 4
        assert setup.decide("dave", "get", "configmaps")["allowed"] is False  # still the live answer
        assert shadow_count(setup.metrics(), "shadow_allows") == before + 1

        setup.shadow.write_text(SHADOW + '{"user":"erin","resource":\n')
        check = wait_for(lambda: setup.readyz().json()["checks"][SHADOW_CHECK]["failures"] == 1
                         and setup.readyz())
        assert check.status_code == 200 and check.json()["status"] == "ready"  # advisory: still ready
        shown = check.json()["checks"][SHADOW_CHECK]
        assert shown["ok"] is False and shown["lastError"].startswith("shadow.jsonl:4: invalid JSON")
        metrics = setup.metrics()
        assert metrics[("gatekeeper_reload_healthy", (("file", SHADOW_CHECK),))] == 0
        assert shadow_sha(metrics) == good  # the last good version decides on
        setup.decide("dave", "get", "configmaps")
        assert shadow_count(setup.metrics(), "shadow_allows") == before + 2
        assert "reload of shadow authorization policy refused" in server.log()

        setup.shadow.write_text(SHADOW)
        wait_for(lambda: setup.readyz().json()["checks"][SHADOW_CHECK]["ok"])
        assert shadow_sha(setup.metrics()) == sha256(setup.shadow)


def test_sighup_loads_the_shadow_at_once(tmp_path: Path) -> None:
    with running_server(tmp_path, [*shadow_args(tmp_path), "--reload-settle", "600"]) as server:
        setup = Setup(server, tmp_path)
        old = sha256(setup.shadow)
        setup.shadow.write_text(SHADOW + DAVE)
        time.sleep(1.0)  # five polls: none loads it within the settle time
        assert shadow_sha(setup.metrics()) == old
        os.kill(server.process.pid, signal.SIGHUP)
        wait_for(lambda: shadow_sha(setup.metrics()) == sha256(setup.shadow))
        before = shadow_count(setup.metrics(), "shadow_allows")
        setup.decide("dave", "get", "configmaps")
        assert shadow_count(setup.metrics(), "shadow_allows") == before + 1


def test_without_a_shadow_file_there_are_no_shadow_metrics_checks_or_audit_fields(plain: Setup) -> None:
    for user, verb, resource in REQUESTS:
        plain.decide(user, verb, resource)
    assert not [name for name, _ in plain.metrics() if "shadow" in name]
    assert SHADOW_CHECK not in plain.readyz().json()["checks"]
    lines = wait_for(lambda: len(plain.audit_lines()) >= len(REQUESTS) and plain.audit_lines())
    assert all("shadow" not in line for line in lines)


def test_two_workers_sum_their_counts_and_decide_under_deny_unmatched(tmp_path: Path) -> None:
    args = [*shadow_args(tmp_path), "--workers", "2", "--authorization-deny-unmatched"]
    with running_server(tmp_path, args) as server:
        setup = Setup(server, tmp_path)
        for _ in range(20):  # a new connection each: both workers answer some
            assert setup.decide("carol", "create") == {
                "allowed": False, "denied": True, "reason": "No policy matched."
            }
        totals = {shadow_count(setup.metrics(), "shadow_allows") for _ in range(6)}
        assert totals == {20.0}  # whichever worker answers the scrape reports both workers' counts
        assert shadow_sha(setup.metrics()) == sha256(setup.shadow)

        def disagreements() -> list[dict[str, Any]]:
            found = [line["shadow"] for line in setup.audit_lines() if "shadow" in line]
            return found if len(found) >= 20 else []

        found = wait_for(disagreements)
        assert len(found) == 20
        assert {line["decision"] for line in setup.audit_lines()} == {"denied"}
        assert {line["result"] for line in found} == {"shadow_allows"}


def test_a_broken_shadow_at_start_up_is_one_clear_line_naming_the_flag(tmp_path: Path) -> None:
    args = write_files(tmp_path)
    (tmp_path / "shadow.jsonl").write_text('{"user": "x", "readonly": "yes"}\n')
    for name, expected, code in [  # a missing file is a usage error, found as the flags are parsed
        ("shadow.jsonl", "--shadow-authorization-policy-file: shadow.jsonl:1: readonly: expected a boolean",
         1),
        ("missing.jsonl", "--shadow-authorization-policy-file missing.jsonl: no such file", 2),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "gatekeeper.cli", "serve", "--secure-port", str(free_port()),
             "--cert-dir", str(tmp_path / "certs"), *args,
             "--shadow-authorization-policy-file", name],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == code
        assert done.stderr.splitlines()[-1].startswith(f"gatekeeper serve: {expected}"), done.stderr
        assert "Traceback" not in done.stderr


def wait_for(condition: Any, timeout: float = 15.0) -> Any:
    tolerated = (KeyError, ValueError, FileNotFoundError, httpx.HTTPError)
    return waiting.wait_for(condition, timeout, interval=0.1, tolerate=tolerated)
