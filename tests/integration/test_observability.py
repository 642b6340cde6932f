"""Metrics, the audit log and JSON logs of a real `gatekeeper serve` (real TLS, real files).

The server here has a token file, a quota in a namespace and an audit log. Every test reads
what the server really wrote: /metrics in Prometheus' text format, the audit log's JSON lines,
the server log. Secrets used on the way (a bearer token, a token under review, a Secret's data)
must appear in none of them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import resource
import signal
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gatekeeper.server import observe
from gatekeeper.server.audit import AuditLog, open_audit_log
from tests.support import waiting
from tests.support.server import Server, running_server

CALLER_TOKEN = "tok-caller-3f786850e387550fdab836ed7e6dc881"
REVIEWED_TOKEN = "tok-reviewed-89e6c98d92887913cadf06b2adb97f26"
SECRET_VALUE = "s3cr3t-value-never-logged-1b6453892473a467"
JSON = {"Content-Type": "application/json"}
SECRETS = (CALLER_TOKEN, REVIEWED_TOKEN, SECRET_VALUE, base64.b64encode(SECRET_VALUE.encode()).decode())


def rule(spec: dict[str, Any]) -> str:
    return json.dumps(
        {"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": spec}
    )


POLICY = "\n".join([
    rule({"user": "kube-apiserver", "nonResourcePath": "*"}),
    rule({"user": "prometheus", "nonResourcePath": "/metrics", "readonly": True}),
    rule({"user": "robot", "nonResourcePath": "/authorize"}),
    rule({"user": "alice", "namespace": "team-a", "resource": "pods"}),
]) + "\n"
STATE = """\
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
status: {phase: Active}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: compute, namespace: team-a}
spec:
  hard: {pods: "5", requests.cpu: "2"}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: team-a}
"""


@dataclass
class Setup:
    server: Server
    workdir: Path

    @property
    def audit_path(self) -> Path:
        return self.workdir / "audit" / "audit.log"

    def audit_lines(self) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 5
        while not self.audit_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with self.server.client_as("prometheus") as c:
            response = c.get("/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


def write_files(workdir: Path) -> list[str]:
    (workdir / "policy.jsonl").write_text(POLICY)
    (workdir / "tokens.csv").write_text(f'{CALLER_TOKEN},robot,robot-uid,"bots"\n'
                                        f'{REVIEWED_TOKEN},carol,carol-uid,"dev,ops"\n')
    (workdir / "state.yaml").write_text(STATE)
    return [
        "--authorization-policy-file", "policy.jsonl", "--token-auth-file", "tokens.csv",
        "--state", "state.yaml", "--store", "memory://", "--audit-log-path", "audit/audit.log",
        "--webhook-callers", "user:kube-apiserver,user:robot",
    ]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("observability")
    with running_server(workdir, write_files(workdir)) as server:
        yield Setup(server, workdir)


def sar(user: str, verb: str = "get", namespace: str = "team-a") -> dict[str, Any]:
    return {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["dev"], "extra": {"token": [SECRET_VALUE]},
                 "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": "pods"}},
    }


def pod_review(uid: str, name: str, namespace: str = "team-a", cpu: str = "100m") -> dict[str, Any]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
           "spec": {"serviceAccountName": "default", "containers": [{"name": "app", "image": "nginx",
                                    "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}}]}}
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "name": name, "namespace": namespace, "operation": "CREATE",
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
                    "object": pod, "dryRun": False},
    }


def secret_review(uid: str) -> dict[str, Any]:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "team-a"},
              "data": {"password": base64.b64encode(SECRET_VALUE.encode()).decode()},
              "stringData": {"password": SECRET_VALUE}}
    review = pod_review(uid, "db")
    review["request"].update(kind={"group": "", "version": "v1", "kind": "Secret"},
                             resource={"group": "", "version": "v1", "resource": "secrets"}, object=secret)
    return review


def token_review(token: str) -> dict[str, Any]:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}


def counter(metrics: dict[Any, float], endpoint: str, decision: str) -> float:
    key = ("gatekeeper_requests_total", (("decision", decision), ("endpoint", endpoint)))
    return metrics.get(key, 0.0)


def test_requests_are_counted_and_timed_per_endpoint_and_decision(setup: Setup) -> None:
    before = setup.metrics()
    with setup.server.client() as c:
        assert c.post("/authorize", json=sar("alice")).json()["status"]["allowed"] is True
        other_namespace = c.post("/authorize", json=sar("alice", namespace="team-b"))
        assert other_namespace.json()["status"]["allowed"] is False
        assert c.post("/authorize", content=b"{not json", headers=JSON).status_code == 400
        assert c.post("/validate", json=pod_review("obs-uid-1", "metrics-pod")).status_code == 200
        refused = c.post("/validate", json=pod_review("obs-uid-2", "pod-in-nowhere", namespace="nowhere"))
        assert refused.json()["response"]["allowed"] is False
    with setup.server.client(cert=None) as c:
        assert c.post("/authorize", json=sar("alice")).status_code == 401
    after = setup.metrics()
    for endpoint, decision in [("/authorize", "allowed"), ("/authorize", "no_opinion"),
                               ("/authorize", "bad_request"), ("/authorize", "unauthorized"),
                               ("/validate", "allowed"), ("/validate", "denied")]:
        added = counter(after, endpoint, decision) - counter(before, endpoint, decision)
        assert added == 1, (endpoint, decision)
    labels = (("decision", "allowed"), ("endpoint", "/authorize"))
    histogram = ("gatekeeper_request_duration_seconds_count", labels)
    assert after[histogram] >= 1
    assert any(name == "process_resident_memory_bytes" for name, _ in after)


def test_policy_hash_rule_count_and_reloads(setup: Setup) -> None:
    policy = setup.workdir / "policy.jsonl"
    metrics = setup.metrics()
    sha = hashlib.sha256(policy.read_bytes()).hexdigest()
    assert metrics[("gatekeeper_policy_info", (("file", str(policy.name)), ("sha256", sha)))] == 1
    assert metrics[("gatekeeper_policy_rules", ())] == 4
    reloads = ("gatekeeper_reloads_total", (("file", "authorization policy"), ("result", "success")))
    failures = ("gatekeeper_reloads_total", (("file", "authorization policy"), ("result", "failure")))

    policy.write_text(POLICY + '{"user": "late", "resource": \n')  # broken: refused, old one stays
    wait_for(lambda: setup.metrics()[failures] == metrics[failures] + 1)
    broken = setup.metrics()
    assert broken[("gatekeeper_policy_info", (("file", str(policy.name)), ("sha256", sha)))] == 1
    assert broken[("gatekeeper_reload_healthy", (("file", "authorization policy"),))] == 0

    policy.write_text(POLICY + rule({"user": "late", "nonResourcePath": "/version"}) + "\n")
    wait_for(lambda: setup.metrics()[reloads] == metrics[reloads] + 1)
    fixed = setup.metrics()
    new_sha = hashlib.sha256(policy.read_bytes()).hexdigest()
    assert fixed[("gatekeeper_policy_info", (("file", str(policy.name)), ("sha256", new_sha)))] == 1
    assert fixed[("gatekeeper_policy_rules", ())] == 5
    assert fixed[("gatekeeper_reload_healthy", (("file", "authorization policy"),))] == 1


def test_quota_usage_per_namespace(setup: Setup) -> None:
    with setup.server.client() as c:
        assert c.post("/validate", json=pod_review("obs-quota-1", "quota-pod", cpu="250m")).status_code == 200
    metrics = setup.metrics()
    labels = (("namespace", "team-a"), ("resource", "requests.cpu"), ("resourcequota", "compute"))
    assert metrics[("gatekeeper_quota_hard", labels)] == 2.0
    assert metrics[("gatekeeper_quota_used", labels)] >= 0.25


def test_one_audit_line_per_decision_with_rule_plugin_and_caller(setup: Setup) -> None:
    with setup.server.client() as c:
        c.post("/authorize", json=sar("alice", verb="delete"))
        c.post("/admit", json=pod_review("audit-uid-2", "audit-pod", namespace="nowhere"))
        c.post("/authenticate", json=token_review(REVIEWED_TOKEN))
        c.post("/authenticate", json=token_review(REVIEWED_TOKEN + "x"))
    with setup.server.client(cert=None, headers={"Authorization": f"Bearer {CALLER_TOKEN}"}) as c:
        c.post("/authorize", json=sar("bob"))
    def written() -> dict[tuple[str, str | None, str], dict[str, Any]]:  # once this test's last line is in
        by = {(line["endpoint"], line["user"], line["decision"]): line for line in setup.audit_lines()}
        return by if ("/authorize", "bob", "no_opinion") in by else {}

    by = wait_for(written)

    allowed = by[("/authorize", "alice", "allowed")]
    assert allowed["reason"] == "policy.jsonl:4"
    assert allowed["caller"] == {"user": "kube-apiserver", "groups": ["system:authenticated"]}
    assert allowed["groups"] == ["dev"]
    expected = {"verb": "delete", "namespace": "team-a", "resource": "pods"}
    assert expected.items() <= allowed["attributes"].items()
    assert allowed["time"].endswith("Z")

    denied = by[("/admit", "alice", "denied")]
    assert denied["plugin"] == "NamespaceLifecycle"
    assert "nowhere" in denied["reason"] and denied["attributes"]["uid"] == "audit-uid-2"

    assert by[("/authenticate", "carol", "authenticated")]["groups"] == ["dev", "ops", "system:authenticated"]
    assert ("/authenticate", None, "unauthenticated") in by
    assert by[("/authorize", "bob", "no_opinion")]["caller"]["user"] == "robot"


def test_no_secret_reaches_the_audit_log_or_the_server_log(setup: Setup) -> None:
    with setup.server.client() as c:
        c.post("/authenticate", json=token_review(REVIEWED_TOKEN))
        c.post("/validate", json=secret_review("secret-uid-1"))
        c.post("/authorize", json=sar("alice"))
    with setup.server.client(cert=None, headers={"Authorization": f"Bearer {CALLER_TOKEN}x"}) as c:
        assert c.post("/authorize", json=sar("alice")).status_code == 401
    wait_for(lambda: any(line["attributes"].get("uid") == "secret-uid-1" for line in setup.audit_lines()))
    written = setup.audit_path.read_text() + setup.server.log()
    for secret in SECRETS:
        assert secret not in written



def test_refused_callers_are_audited_with_where_they_came_from(setup: Setup) -> None:
    with setup.server.client(cert=None, headers={"Authorization": f"Bearer {CALLER_TOKEN}-wrong"}) as c:
        assert c.post("/admit", json=pod_review("refused-1", "p")).status_code == 401
    with setup.server.client_as("mallory", groups=["bots"]) as c:
        assert c.post("/admit", json=pod_review("refused-2", "p")).status_code == 403  # not a caller

    def refusals() -> list[dict[str, Any]]:  # the only refusals on /admit in this module
        found = [line for line in setup.audit_lines()
                 if line["endpoint"] == "/admit" and line["decision"] in ("unauthorized", "forbidden")]
        return found if len(found) >= 2 else []

    unauthorized, forbidden = sorted(wait_for(refusals), key=lambda line: line["decision"], reverse=True)
    assert unauthorized["caller"] is None
    assert unauthorized["reason"] == "bearer: invalid bearer token"
    assert forbidden["caller"] == {"user": "mallory", "groups": ["bots", "system:authenticated"]}
    assert forbidden["reason"] == "not named by --webhook-callers"
    for line in (unauthorized, forbidden):
        assert line["endpoint"] == "/admit" and line["sourceIP"] == "127.0.0.1"
        assert line["attributes"] == {"verb": "post", "path": "/admit"}
    assert CALLER_TOKEN not in setup.audit_path.read_text()


def test_audit_log_rotates_by_size_and_keeps_maxbackup_files(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", max_bytes=1000, max_backups=2)
    for i in range(100):
        log.write({"n": i, "padding": "x" * 50})
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir() if p.name != "audit.log.lock")
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    for name in [*files, "audit.log.lock"]:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600  # names users and objects
    for name in files:
        assert (tmp_path / name).stat().st_size <= 1000
        for line in (tmp_path / name).read_text().splitlines():
            assert json.loads(line)["padding"] == "x" * 50
    assert json.loads((tmp_path / "audit.log").read_text().splitlines()[-1])["n"] == 99




def test_maxbackup_0_keeps_every_rotated_file_and_maxsize_0_means_100_megabytes(tmp_path: Path) -> None:
    """As kube-apiserver reads --audit-log-maxbackup 0 and --audit-log-maxsize 0."""
    log = AuditLog(tmp_path / "audit.log", max_bytes=1000, max_backups=0)
    for i in range(100):
        log.write({"n": i, "padding": "x" * 50})
    log.close()
    files = [p for p in tmp_path.iterdir() if p.name != "audit.log.lock"]
    assert len(files) > 5
    numbers = sorted(n for p in files for n in _lines(p))
    assert numbers == list(range(100))
    newest_first = sorted(files, key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    assert [n for p in reversed(newest_first) for n in _lines(p)] == list(range(100))  # PATH.N is the oldest
    default = open_audit_log(tmp_path / "other.log", max_megabytes=0, max_backups=0)
    assert default is not None and default.max_bytes == 100 * 1024 * 1024
    default.close()

def _lines(path: Path) -> list[int]:
    return [json.loads(line)["n"] for line in path.read_text().splitlines()] if path.exists() else []


def test_the_audit_log_survives_its_files_being_removed_or_moved(tmp_path: Path) -> None:
    """An operator's rm or an outside logrotate between two batches: the next batch goes to a
    new PATH (and a new PATH.lock), and the writer keeps writing."""
    path = tmp_path / "audit.log"
    log = AuditLog(path, max_bytes=0, max_backups=0)
    log.write({"n": 1})
    wait_for(lambda: _lines(path) == [1])
    path.rename(tmp_path / "moved.log")
    (tmp_path / "audit.log.lock").unlink()
    log.write({"n": 2})
    wait_for(lambda: _lines(path) == [2])
    path.unlink()
    log.write({"n": 3})
    log.close()
    assert _lines(path) == [3]
    assert _lines(tmp_path / "moved.log") == [1]
    assert (tmp_path / "audit.log.lock").exists()



def test_a_rotation_that_fails_keeps_every_entry_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.log"
    (tmp_path / "audit.log.1" / "in-the-way").mkdir(parents=True)  # PATH.1 cannot be replaced
    log = AuditLog(path, max_bytes=100, max_backups=1)
    for n in range(10):
        log.write({"n": n, "padding": "x" * 30})
    log.close()
    assert _lines(path) == list(range(10))  # past the size limit rather than lost
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
    assert "cannot rotate" in caplog.records[0].getMessage()


def _write_past_a_file_size_limit(path: str) -> None:
    """In a process of its own: the limit applies to the whole process."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    log = AuditLog(Path(path), max_bytes=0, max_backups=0)
    log.write({"n": 0, "padding": "x" * 30})
    time.sleep(0.2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (120, resource.RLIM_INFINITY))  # a disk that fills up
    for n in range(1, 6):
        log.write({"n": n, "padding": "x" * 30})
        time.sleep(0.08)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    log.write({"n": 6, "padding": "x" * 30})
    log.close()


def test_a_write_the_disk_cuts_short_leaves_no_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    spawn = multiprocessing.get_context("spawn")
    child = spawn.Process(target=_write_past_a_file_size_limit, args=(str(path),))
    child.start()
    child.join(30)
    numbers = _lines(path)  # every line whole JSON: a partial write was cut off again
    assert numbers[0] == 0 and numbers[-1] == 6 and len(numbers) < 7

def test_refused_callers_are_audited_within_a_budget_that_counts_what_it_leaves_out() -> None:
    now = [100.0]
    budget = observe.RefusalBudget(per_second=3, clock=lambda: now[0])
    assert [budget.take() for _ in range(5)] == [0, 0, 0, None, None]
    now[0] = 100.9
    assert budget.take() is None
    now[0] = 101.0
    assert [budget.take() for _ in range(4)] == [3, 0, 0, None]  # the first of a second says 3 were left out
    now[0] = 105.2
    assert budget.take() == 1


def test_a_flood_of_refused_callers_is_audited_in_part_and_counted_in_full(setup: Setup) -> None:
    flood = 5 * observe.REFUSALS.per_second
    with setup.server.client(cert=None) as c:
        for _ in range(flood):
            assert c.post("/mutate", json={}).status_code == 401
    time.sleep(1.1)  # the next second's first refusal reports what the flood left out
    with setup.server.client(cert=None) as c:
        assert c.post("/mutate", json={}).status_code == 401

    def mutate_refusals() -> list[dict[str, Any]]:
        found = [line for line in setup.audit_lines() if line["endpoint"] == "/mutate"]
        return found if len(found) + sum(line.get("suppressed", 0) for line in found) >= flood + 1 else []

    found = wait_for(mutate_refusals)
    assert len(found) + sum(line.get("suppressed", 0) for line in found) == flood + 1
    assert len(found) < flood + 1  # the budget left some out: a flood cannot fill the audit log

def _write_audit_entries(path: str, writer: int, count: int) -> None:
    log = AuditLog(Path(path), max_bytes=4000, max_backups=1000)
    for n in range(count):
        log.write({"writer": writer, "n": n, "padding": "x" * 40})
        if n % 50 == 0:
            time.sleep(0.06)  # several batches, interleaved with the other writers'
    log.close()


def test_worker_processes_share_one_audit_file_and_its_rotation(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pool.starmap(_write_audit_entries, [(str(path), writer, 400) for writer in range(3)])
    files = [p for p in tmp_path.iterdir() if p.name != "audit.log.lock"]
    assert len(files) > 10  # rotated many times, by whichever process found the file full
    seen = set()
    for file in files:
        assert file.stat().st_size <= 4000
        for line in file.read_text().splitlines():
            entry = json.loads(line)  # whole lines only: no write cut into another
            seen.add((entry["writer"], entry["n"]))
    assert seen == {(writer, n) for writer in range(3) for n in range(400)}  # nothing lost, nothing twice
    assert sum(len(f.read_text().splitlines()) for f in files) == 1200


def test_json_logs_and_two_workers_share_request_metrics(tmp_path: Path) -> None:
    args = [*write_files(tmp_path), "--log-format", "json", "--workers", "2"]
    with running_server(tmp_path, args) as server:
        setup = Setup(server, tmp_path)
        for _ in range(20):  # a new connection each: both workers answer some
            with server.client() as c:
                assert c.post("/authorize", json=sar("alice")).status_code == 200
        with server.client(cert=None) as c:
            c.post("/authorize", json=sar("alice"))  # a 401: logged by the server
        totals = {counter(setup.metrics(), "/authorize", "allowed") for _ in range(6)}
        assert totals == {20.0}  # whichever worker answers the scrape reports all of them
        def allowed() -> list[dict[str, Any]]:
            lines = [line for line in setup.audit_lines() if line["decision"] == "allowed"]
            return lines if len(lines) >= 20 else []

        assert len(wait_for(allowed)) == 20  # both workers' lines, in the one file
        assert sorted(p.name for p in (tmp_path / "audit").iterdir()) == ["audit.log", "audit.log.lock"]
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys()
    assert any("401 POST /authorize" in json.loads(line)["message"] for line in lines)


def wait_for(condition: Any, timeout: float = 10.0) -> Any:
    """Poll until truthy; a scrape or an audit file that is not there yet counts as not yet."""
    tolerated = (KeyError, FileNotFoundError, json.JSONDecodeError, httpx.HTTPError)
    return waiting.wait_for(condition, timeout, interval=0.1, tolerate=tolerated)
