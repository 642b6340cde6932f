"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager, kubectl.

The binaries come from `tests/e2e/kube/build.sh` (Kubernetes' own source at the release pinned in
tests/e2e/kube/go.mod, built once into a cache outside the repo). Every component listens on
127.0.0.1 only, on free ports, with its data and logs in the test's temporary folder.

The cluster's PKI is its own (a CA for the API server's serving certificate and its clients);
gatekeeper's dev PKI is separate, exactly as on a real cluster where gatekeeper is an outside
webhook. Which authorizers and admission plugins kube-apiserver runs is the caller's choice
(`ApiServerConfig`): the e2e suite wires gatekeeper in through the files `gatekeeper
webhook-config` writes, and the differential runs the in-tree plugins instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from gatekeeper import pki
from tests.support.processes import stop
from tests.support.server import free_port

KUBE_DIR = Path(__file__).parent / "kube"
ADMIN = "e2e-admin"  # system:masters: the cluster's break-glass identity, never sent to gatekeeper
CONTROLLER_MANAGER = "system:kube-controller-manager"
LOG_TAIL_LINES = 40
APISERVER_STOP_SECONDS = 3.0

# The in-tree admission plugins gatekeeper replaces; disabled whenever gatekeeper is wired in.
GATEKEEPER_PLUGINS = ("NamespaceLifecycle", "LimitRanger", "ServiceAccount", "ResourceQuota")
CONTROLLERS = "namespace,resourcequota,serviceaccount,serviceaccount-token,garbagecollector"


def binaries() -> Path:
    """The folder holding the pinned kube-apiserver, kube-controller-manager and kubectl.

    build.sh builds them on first use (minutes) and answers from its cache afterwards (instantly).
    Without Go the e2e tests skip, except under CI, where that is a failure.
    """
    if shutil.which("go") is None and not os.environ.get("GATEKEEPER_KUBE_BIN"):
        if os.environ.get("CI") == "true":
            pytest.fail(
                "no Go toolchain: .ci/run builds the control plane, so CI must not skip the e2e tests"
            )
        pytest.skip("no Go toolchain to build kube-apiserver (tests/e2e/kube/build.sh)")
    if os.environ.get("GATEKEEPER_KUBE_BIN"):
        return Path(os.environ["GATEKEEPER_KUBE_BIN"])
    done = subprocess.run(
        ["bash", str(KUBE_DIR / "build.sh")], capture_output=True, text=True, timeout=3600, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"tests/e2e/kube/build.sh failed:\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def kubernetes_version() -> str:
    """The release tests/e2e/kube/go.mod pins (the version docs/real-cluster.md says is tested)."""
    for line in (KUBE_DIR / "go.mod").read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[-2] == "k8s.io/kubernetes":
            return words[-1]
    raise AssertionError("tests/e2e/kube/go.mod pins no k8s.io/kubernetes release")


@dataclass(frozen=True)
class ClusterPKI:
    """The cluster's own CA, the API server's serving certificate, client certificates, SA keys."""

    directory: Path
    ca: pki.KeyPair
    serving: pki.KeyPair
    service_account_key: Path
    service_account_pub: Path

    @classmethod
    def make(cls, directory: Path) -> ClusterPKI:
        directory.mkdir(parents=True, exist_ok=True)
        ca = pki.make_ca("e2e-cluster-ca")
        ca_pair = pki.write(ca, directory, "cluster-ca")
        serving = pki.write(pki.issue_server(ca, ["127.0.0.1", "localhost"]), directory, "apiserver")
        key = pki.new_key()
        sa_key, sa_pub = directory / "sa.key", directory / "sa.pub"
        sa_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        sa_pub.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return cls(directory, ca_pair, serving, sa_key, sa_pub)

    def client(self, user: str, groups: Sequence[str] = ()) -> pki.KeyPair:
        stem = pki.client_stem(f"{user}-{'-'.join(groups)}")
        found = pki.pair(self.directory, stem)
        if found.cert.exists():
            return found
        return pki.write(pki.issue_client(pki.load(self.ca), user, groups), self.directory, stem)


@dataclass(frozen=True)
class ApiServerConfig:
    """How kube-apiserver is wired: its authorization and admission flags, and the audit log."""

    flags: tuple[str, ...] = ("--authorization-mode=RBAC",)
    audit_policy: Path | None = None


@dataclass
class Component:
    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        if self.process is not None and self.process.poll() is None:
            stop(self.process, timeout=timeout)
        self.process = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class ControlPlane:
    workdir: Path
    bin_dir: Path
    pki: ClusterPKI
    etcd_url: str
    apiserver_port: int
    config: ApiServerConfig
    etcd_prefix: str = "/registry"
    controllers: str = CONTROLLERS
    components: dict[str, Component] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def kubeconfig(self, user: str, groups: Sequence[str] = (), token: str | None = None) -> Path:
        """A kubeconfig for `user`: a client certificate from the cluster CA, or a bearer token."""
        name = f"{user}-token" if token is not None else f"{user}-{'-'.join(groups)}"
        path = self.workdir / "kubeconfigs" / f"{pki.client_stem(name)}.kubeconfig"
        path.parent.mkdir(exist_ok=True)
        credentials: dict[str, str]
        if token is not None:
            credentials = {"token": token}
        else:
            pair = self.pki.client(user, groups)
            credentials = {"client-certificate": str(pair.cert), "client-key": str(pair.key)}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "e2e",
                    "cluster": {"server": self.url, "certificate-authority": str(self.pki.ca.cert)},
                }
            ],
            "users": [{"name": name, "user": credentials}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": name}}],
            "current-context": "e2e",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    @property
    def admin(self) -> Path:
        return self.kubeconfig(ADMIN, ["system:masters"])

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl as a cluster user would (the admin unless `kubeconfig` says otherwise)."""
        command = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig or self.admin), *args]
        done = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir)},
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done

    def apply(self, manifest: dict[str, Any] | str, *flags: str) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.kubectl("apply", "-f", "-", *flags, stdin=text)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.start_apiserver()
        self.start_controller_manager()

    def start_apiserver(self, config: ApiServerConfig | None = None) -> None:
        self.config = config or self.config
        component = Component(
            "kube-apiserver", self._apiserver_command(), self.workdir / "kube-apiserver.log"
        )
        self.components["kube-apiserver"] = component
        component.start()
        self.wait_ready()

    def restart_apiserver(self, config: ApiServerConfig | None = None) -> None:
        """Stopped at once when its graceful shutdown would hold on (it drains open watches).

        kube-controller-manager is started afresh after it: its informers back off for up to a
        minute after a few restarts in a row, and a test waits for its service accounts."""
        manager = self.components.get("kube-controller-manager")
        if manager is not None:
            manager.stop()
        self.components["kube-apiserver"].stop(timeout=APISERVER_STOP_SECONDS)
        self.start_apiserver(config)
        if manager is not None:
            self.start_controller_manager(self.controllers)

    def restart_controller_manager(self, controllers: str = CONTROLLERS) -> None:
        self.components["kube-controller-manager"].stop()
        self.start_controller_manager(controllers)

    def start_controller_manager(self, controllers: str = CONTROLLERS) -> None:
        self.controllers = controllers
        kubeconfig = self.kubeconfig(CONTROLLER_MANAGER, ["system:masters"])
        command = [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--controllers={controllers}",
            f"--service-account-private-key-file={self.pki.service_account_key}",
            f"--root-ca-file={self.pki.ca.cert}",
            "--use-service-account-credentials=false",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--cert-dir={self.workdir / 'kcm-certs'}",
            "--concurrent-namespace-syncs=5",
            "--authentication-skip-lookup=true",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "-v=1",
        ]
        component = Component(
            "kube-controller-manager", command, self.workdir / "kube-controller-manager.log"
        )
        self.components["kube-controller-manager"] = component
        component.start()

    def _apiserver_command(self) -> list[str]:
        p = self.pki
        command = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            f"--etcd-prefix={self.etcd_prefix}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.apiserver_port}",
            f"--tls-cert-file={p.serving.cert}",
            f"--tls-private-key-file={p.serving.key}",
            f"--client-ca-file={p.ca.cert}",
            f"--service-account-key-file={p.service_account_pub}",
            f"--service-account-signing-key-file={p.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.0.0.0/24",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            "--anonymous-auth=false",
            "--profiling=false",
            "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type=none",
            *self.config.flags,
        ]
        if self.config.audit_policy is not None:
            command += [
                f"--audit-policy-file={self.config.audit_policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-mode=blocking",
            ]
        return command

    @property
    def audit_log(self) -> Path:
        return self.workdir / "kube-apiserver-audit.jsonl"

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until /readyz answers ok (every post-start hook done, RBAC bootstrap roles written)."""
        admin = self.pki.client(ADMIN, ["system:masters"])
        deadline = time.monotonic() + timeout
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        with httpx.Client(verify=context, timeout=5) as http:
            while time.monotonic() < deadline:
                if not self.components["kube-apiserver"].running():
                    raise RuntimeError(f"kube-apiserver exited:\n{self.tails()}")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{self.url}/readyz").status_code == 200:
                        return
                time.sleep(0.2)
        raise RuntimeError(f"kube-apiserver not ready in {timeout} s:\n{self.tails()}")

    def stop(self) -> None:
        for component in reversed(list(self.components.values())):
            component.stop()

    def tails(self) -> str:
        """The last lines of every component's log, for a failing test's report."""
        return "\n".join(
            f"----- {name} ({component.log_path}) -----\n{component.tail()}"
            for name, component in self.components.items()
        )


@contextlib.contextmanager
def running_etcd(workdir: Path) -> Iterator[tuple[str, Component]]:
    binary = shutil.which("etcd")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("etcd not installed; .ci/run installs etcd-server, so CI must not skip the e2e tests")
        pytest.skip("etcd not installed (apt-get install etcd-server)")
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    # Debian's etcd (3.4) has no --unsafe-no-fsync: keep its data in memory-backed /dev/shm instead
    data = Path(
        tempfile.mkdtemp(prefix="gatekeeper-e2e-etcd-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
    )
    command = [
        binary,
        "--name",
        "e2e",
        "--data-dir",
        str(data),
        "--listen-client-urls",
        url,
        "--advertise-client-urls",
        url,
        "--listen-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-cluster",
        f"e2e=http://127.0.0.1:{peer}",
        "--experimental-watch-progress-notify-interval",
        "5s",
        "--log-level",
        "warn",
    ]
    component = Component("etcd", command, workdir / "etcd.log")
    component.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"etcd did not become healthy:\n{component.tail()}")
        yield url, component
    finally:
        component.stop()
        shutil.rmtree(data, ignore_errors=True)
