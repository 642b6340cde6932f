"""Real etcd for tests: one member or a 3-member cluster on loopback, free ports, temporary data.

`.ci/run` installs Debian's etcd-server. Where the binary is missing the etcd tests skip, except
under CI (CI=true), where that is a failure: CI must never pass by skipping them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from gatekeeper.store.etcd import EtcdStore
from gatekeeper.store.etcd_options import EtcdOptions
from tests.support.server import free_port

MISSING = "etcd not installed (apt-get install etcd-server)"


def require_etcd() -> str:
    """The etcd binary; skip the test without it (fail under CI)."""
    binary = shutil.which("etcd")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{MISSING}; .ci/run installs it, so CI must not skip the etcd tests")
        pytest.skip(MISSING)
    return binary


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def status(self) -> dict[str, str] | None:
        """This member's /v3/maintenance/status header and leader, or None if it does not answer."""
        try:
            response = httpx.post(f"http://{self.endpoint}/v3/maintenance/status", json={}, timeout=1)
            body = response.json()
            return {"member": body["header"]["member_id"], "leader": body.get("leader", "")}
        except (httpx.HTTPError, ValueError, KeyError):
            return None


@dataclass
class Cluster:
    members: list[Member]
    binary: str
    token: str
    started: list[Member] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The --store value naming every member."""
        return "etcd://" + ",".join(m.endpoint for m in self.members)

    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)

    def start(self, member: Member) -> None:
        command = [
            self.binary, "--name", member.name, "--data-dir", str(member.data_dir),
            "--listen-client-urls", f"http://{member.endpoint}",
            "--advertise-client-urls", f"http://{member.endpoint}",
            "--listen-peer-urls", f"http://127.0.0.1:{member.peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{member.peer_port}",
            "--initial-cluster", self.initial_cluster(), "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn",
        ]
        with open(member.log_path, "ab") as log:
            member.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def start_all(self) -> None:
        for member in self.members:
            self.start(member)
        self.wait_healthy()

    def stop(self, member: Member, kill: bool = False) -> None:
        process, member.process = member.process, None
        if process is None:
            return
        process.kill() if kill else process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for member in self.members:
            self.stop(member)

    def leader(self) -> Member | None:
        """The member the running members agree leads, or None (no answer, no agreement yet)."""
        running = [m for m in self.members if m.process is not None]
        statuses = [(m, m.status()) for m in running]
        if not running or any(status is None for _, status in statuses):
            return None
        leaders = {status["leader"] for _, status in statuses if status}
        if len(leaders) != 1:
            return None
        return next((m for m, status in statuses if status and status["member"] in leaders), None)

    def wait_healthy(self, timeout: float = 30) -> Member:
        """Wait until every running member answers, they agree on a leader and reads work."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and all(_serves(m) for m in self.members if m.process is not None):
                return leader
            time.sleep(0.1)
        logs = "\n".join(m.log_path.read_text(errors="replace")[-2000:] for m in self.members)
        raise RuntimeError(f"etcd did not become healthy in {timeout}s:\n{logs}")


def _serves(member: Member) -> bool:
    """A linearizable read answers (a leader exists and this member can reach it)."""
    try:
        response = httpx.post(f"http://{member.endpoint}/v3/kv/range", json={"key": "AA=="}, timeout=2)
        return response.status_code == 200
    except httpx.HTTPError:
        return False


def make_cluster(workdir: Path, size: int = 1) -> Cluster:
    """A cluster of `size` members on free ports, not started."""
    binary = require_etcd()
    workdir.mkdir(parents=True, exist_ok=True)
    members = [
        Member(f"m{i}", free_port(), free_port(), workdir / f"etcd-m{i}", workdir / f"etcd-m{i}.log")
        for i in range(size)
    ]
    return Cluster(members, binary, token=f"gk-{os.getpid()}-{time.monotonic_ns()}")


@contextlib.contextmanager
def running_cluster(workdir: Path, size: int = 1) -> Iterator[Cluster]:
    cluster = make_cluster(workdir, size)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.stop_all()


_shared: Cluster | None = None


def shared_cluster() -> Cluster:
    """One single-member etcd for the whole test run, started on first use and stopped at exit;
    tests keep apart by each using a prefix of its own."""
    global _shared
    if _shared is None:
        workdir = Path(tempfile.mkdtemp(prefix="gatekeeper-etcd-"))
        cluster = make_cluster(workdir)
        cluster.start_all()
        atexit.register(_remove, cluster, workdir)
        _shared = cluster
    return _shared


def _remove(cluster: Cluster, workdir: Path) -> None:
    cluster.stop_all()
    shutil.rmtree(workdir, ignore_errors=True)


def fresh_prefix() -> str:
    return f"/test-{uuid.uuid4().hex[:12]}/"


def open_etcd_store(cluster: Cluster | None = None, prefix: str | None = None) -> EtcdStore:
    """An EtcdStore on `cluster` (the shared one by default) under a prefix no other test uses."""
    cluster = cluster or shared_cluster()
    endpoints = tuple(("127.0.0.1", m.client_port) for m in cluster.members)
    return EtcdStore(EtcdOptions(endpoints=endpoints, prefix=prefix or fresh_prefix()))


@contextlib.contextmanager
def etcd_store(cluster: Cluster | None = None, prefix: str | None = None) -> Iterator[EtcdStore]:
    store = open_etcd_store(cluster, prefix)
    try:
        yield store
    finally:
        store.close()
