"""Real etcd for tests: one member or a 3-member cluster on loopback, free ports, temporary data.

`.ci/run` installs Debian's etcd-server. Where the binary is missing the etcd tests skip, except
under CI (CI=true), where that is a failure: CI must never pass by skipping them.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import ipaddress
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gatekeeper import pki
from gatekeeper.backends.etcd.options import EtcdOptions
from gatekeeper.backends.etcd.store import EtcdStore
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


@dataclass(frozen=True)
class TLS:
    """Serving certificate of the members, and the client certificate gatekeeper presents (dev CA)."""

    ca: Path
    server: pki.KeyPair
    client: pki.KeyPair

    @classmethod
    def make(cls, directory: Path) -> TLS:
        ca, _ = pki.ensure_dev_pki(directory)
        server = pki.write(_member_certificate(pki.load(ca)), directory, "etcd-member")
        return cls(ca.cert, server, pki.ensure_dev_client(directory, "gatekeeper"))

    def flags(self) -> list[str]:
        return ["--cert-file", str(self.server.cert), "--key-file", str(self.server.key),
                "--client-cert-auth", "--trusted-ca-file", str(self.ca)]

    def http(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client.cert), str(self.client.key))
        return httpx.Client(verify=context, timeout=2)


def _member_certificate(ca: pki.Issued) -> pki.Issued:
    """etcd's own gateway dials the member with the member's certificate, so it needs client auth too."""
    key = pki.new_key()
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "etcd-member")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return pki.Issued(certificate, key)


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    tls: TLS | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    def post(self, path: str, body: dict[str, str]) -> httpx.Response:
        with self.tls.http() if self.tls else httpx.Client(timeout=2) as client:
            return client.post(self.url + path, json=body)

    def status(self) -> dict[str, str] | None:
        """This member's /v3/maintenance/status header and leader, or None if it does not answer."""
        try:
            body = self.post("/v3/maintenance/status", {}).json()
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
            "--listen-client-urls", member.url, "--advertise-client-urls", member.url,
            "--listen-peer-urls", f"http://127.0.0.1:{member.peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{member.peer_port}",
            "--initial-cluster", self.initial_cluster(), "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn",
            *(member.tls.flags() if member.tls else []),
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
        return member.post("/v3/kv/range", {"key": "AA=="}).status_code == 200
    except httpx.HTTPError:
        return False


def make_cluster(workdir: Path, size: int = 1, tls: bool = False) -> Cluster:
    """A cluster of `size` members on free ports, not started; with `tls`, clients must present a
    certificate of the dev CA under workdir/pki (peers still talk plain HTTP)."""
    binary = require_etcd()
    workdir.mkdir(parents=True, exist_ok=True)
    certificates = TLS.make(workdir / "pki") if tls else None
    members = [
        Member(f"m{i}", free_port(), free_port(), workdir / f"etcd-m{i}", workdir / f"etcd-m{i}.log",
               tls=certificates)
        for i in range(size)
    ]
    return Cluster(members, binary, token=f"gk-{os.getpid()}-{time.monotonic_ns()}")


@contextlib.contextmanager
def running_cluster(workdir: Path, size: int = 1, tls: bool = False) -> Iterator[Cluster]:
    cluster = make_cluster(workdir, size, tls)
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
