"""gatekeeper in front of a real control plane, wired in only through `gatekeeper webhook-config`.

The steps are docs/real-cluster.md's ("Use it from a real cluster"), run for real:
1. `gatekeeper certs init` makes gatekeeper's PKI and kube-apiserver's client certificate;
2. `gatekeeper webhook-config --url https://127.0.0.1:PORT` writes the kubeconfigs, the
   AuthorizationConfiguration, the AdmissionConfiguration and the flag files;
3. kube-apiserver runs with the flags of `kube-apiserver-flags.txt` (or the legacy file);
4. `kubectl apply -f admission-webhooks.yaml` registers the admission webhooks, and
   `kubectl apply -f deploy/rbac.yaml` grants gatekeeper's own identity what live mode reads;
5. `gatekeeper serve --kubeconfig` watches the cluster's state.

`Cluster.use(mode)` restarts kube-apiserver when a test module needs another wiring: gatekeeper
through `--authorization-config`, through the legacy `--authorization-mode` flags, or the in-tree
plugins and ABAC authorizer with gatekeeper left out (the differential's baseline).
"""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from gatekeeper import pki
from tests.e2e.controlplane import (
    GATEKEEPER_PLUGINS,
    ApiServerConfig,
    ClusterPKI,
    Component,
    ControlPlane,
    binaries,
    running_etcd,
)
from tests.support.server import free_port
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
GATEKEEPER_USER = "gatekeeper"  # gatekeeper's own identity towards the API server (live state)

# Modes of kube-apiserver
AUTHORIZATION_CONFIG = "authorization-config"  # gatekeeper via --authorization-config (1.32+)
LEGACY = "legacy"  # gatekeeper via --authorization-mode=Node,Webhook,RBAC and the webhook flags
IN_TREE = "in-tree"  # no gatekeeper: --authorization-mode=Node,ABAC,RBAC and the in-tree plugins

# Short caches, so a policy change is seen by the API server within a test's patience.
AUTHORIZED_TTL, UNAUTHORIZED_TTL, TOKEN_TTL = "2s", "1s", "1s"

# The seed's ABAC lines and lines for the e2e's own users. Who may call gatekeeper's webhooks and
# /metrics is not the cluster's policy: --webhook-callers and --metrics-readers, whose defaults
# name the kube-apiserver and prometheus client certificates used here.
POLICY_LINES = [
    {"user": "ceposta", "resource": "pods", "readonly": True},
    {"user": "ceposta", "resource": "events"},
    {"user": "bob", "resource": "pods", "readonly": True, "namespace": "projectcaribou"},
    {"user": "alice", "namespace": "*", "resource": "*", "apiGroup": "*"},
]
TOKENS = {
    "ceposta": "e2e-token-ceposta-0d1f6b2e9a",
    "bob": "e2e-token-bob-7c35aa10f4",
    "alice": "e2e-token-alice-52e8c9d301",
}
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


def policy_text() -> str:
    import json

    return "".join(json.dumps(line) + "\n" for line in POLICY_LINES)


@dataclass
class Gatekeeper:
    """`gatekeeper serve` on a fixed loopback port, so the webhook URLs stay valid across restarts."""

    workdir: Path
    port: int
    kubeconfig: Path
    extra: tuple[str, ...] = ()
    component: Component | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def cert_dir(self) -> Path:
        return self.workdir / "certs"

    @property
    def policy(self) -> Path:
        return self.workdir / "abac.jsonl"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gatekeeper.cli",
            "serve",
            "--secure-port",
            str(self.port),
            "--cert-dir",
            str(self.cert_dir),
            "--authorization-policy-file",
            str(self.policy),
            "--token-auth-file",
            str(self.workdir / "tokens.csv"),
            "--kubeconfig",
            str(self.kubeconfig),
            "--reload-interval",
            "0.2",
            *self.extra,
        ]

    def start(self, wait: bool = True) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = self.workdir / "gatekeeper.log"
        self.component = Component("gatekeeper", self.command(), log)
        with open(log, "ab") as out:
            self.component.process = subprocess.Popen(
                self.command(), cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        if wait:
            self.wait_ready()

    def stop(self) -> None:
        if self.component is not None:
            self.component.stop()

    def metrics(self) -> str:
        """GET /metrics as the Prometheus the policy lets scrape (a dev-CA client certificate)."""
        context = ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt"))
        context.load_cert_chain(str(self.cert_dir / "prometheus.crt"), str(self.cert_dir / "prometheus.key"))
        with httpx.Client(verify=context, timeout=5) as http:
            response = http.get(f"{self.url}/metrics")
        response.raise_for_status()
        return response.text

    def readyz(self) -> httpx.Response:
        with httpx.Client(
            verify=ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt")), timeout=5
        ) as http:
            return http.get(f"{self.url}/readyz")

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            assert self.component is not None and self.component.running(), self.log()[-3000:]
            response = self.readyz()
            return response.json() if response.status_code == 200 else None

        return dict(wait_for(ready, timeout=timeout, interval=0.2, tolerate=(httpx.HTTPError,)))

    def log(self) -> str:
        path = self.workdir / "gatekeeper.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Cluster:
    control_plane: ControlPlane
    gatekeeper: Gatekeeper
    webhook_dir: Path
    mode: str = AUTHORIZATION_CONFIG
    webhooks_registered: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def kubectl(self) -> Any:
        return self.control_plane.kubectl

    def token_kubeconfig(self, user: str) -> Path:
        return self.control_plane.kubeconfig(user, token=TOKENS[user])

    def use(self, mode: str) -> None:
        """kube-apiserver wired for `mode` (restarted only when the mode changes), and gatekeeper's
        admission webhooks registered unless the mode is the in-tree baseline. A module that
        failed half-way through a switch leaves nothing wrong for the next one."""
        if mode != self.mode:
            self.mode = ""  # unknown until the restart below is done
            if mode == IN_TREE:
                self.admission_webhooks(registered=False)
            self.control_plane.restart_apiserver(self.apiserver_config(mode))
            self.mode = mode
        if mode != IN_TREE:
            self.admission_webhooks(registered=True)
            self.gatekeeper.wait_ready()

    def apiserver_config(self, mode: str) -> ApiServerConfig:
        audit = self.control_plane.workdir / "audit-policy.yaml"
        if mode == IN_TREE:
            flags = (
                "--authorization-mode=Node,ABAC,RBAC",
                f"--authorization-policy-file={self.gatekeeper.policy}",
                f"--token-auth-file={self.gatekeeper.workdir / 'tokens.csv'}",
                f"--enable-admission-plugins={','.join(GATEKEEPER_PLUGINS)}",
            )
        else:
            name = (
                "kube-apiserver-flags.txt"
                if mode == AUTHORIZATION_CONFIG
                else "kube-apiserver-flags-legacy.txt"
            )
            flags = tuple((self.webhook_dir / name).read_text().split())
        return ApiServerConfig(flags=flags, audit_policy=audit)

    def admission_webhooks(self, registered: bool) -> None:
        """Register gatekeeper's admission webhooks from webhook-config's manifest, or remove them."""
        if registered == self.webhooks_registered:
            return
        manifest = str(self.webhook_dir / "admission-webhooks.yaml")
        if registered:
            self.kubectl("apply", "-f", manifest)
        else:
            self.kubectl("delete", "-f", manifest, "--ignore-not-found")
        self.webhooks_registered = registered

    def tails(self) -> str:
        gatekeeper = "\n".join(self.gatekeeper.log().splitlines()[-40:])
        return f"{self.control_plane.tails()}\n----- gatekeeper -----\n{gatekeeper}"


def gatekeeper_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"gatekeeper {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


@contextlib.contextmanager
def running_cluster(workdir: Path) -> Iterator[Cluster]:
    bin_dir = binaries()
    with running_etcd(workdir) as (etcd_url, etcd):
        cluster_pki = ClusterPKI.make(workdir / "cluster-pki")
        control_plane = ControlPlane(workdir, bin_dir, cluster_pki, etcd_url, free_port(), ApiServerConfig())
        control_plane.components["etcd"] = etcd
        gatekeeper_dir = workdir / "gatekeeper"
        gatekeeper_dir.mkdir()
        (gatekeeper_dir / "abac.jsonl").write_text(policy_text())
        (gatekeeper_dir / "tokens.csv").write_text(
            "".join(f"{token},{user},uid-{user}\n" for user, token in TOKENS.items())
        )
        gatekeeper = Gatekeeper(gatekeeper_dir, free_port(), control_plane.kubeconfig(GATEKEEPER_USER))
        gatekeeper_cli(
            "certs",
            "init",
            "--dir",
            "certs",
            "--client",
            pki.DEV_CLIENT,
            "--client",
            "prometheus",
            cwd=gatekeeper_dir,
        )
        webhook_dir = gatekeeper_dir / "webhook-config"
        gatekeeper_cli(
            "webhook-config",
            "--url",
            gatekeeper.url,
            "--cert-dir",
            "certs",
            "--out-dir",
            str(webhook_dir),
            "--authorized-ttl",
            AUTHORIZED_TTL,
            "--unauthorized-ttl",
            UNAUTHORIZED_TTL,
            "--token-cache-ttl",
            TOKEN_TTL,
            cwd=gatekeeper_dir,
        )
        (workdir / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY))
        cluster = Cluster(control_plane, gatekeeper, webhook_dir)
        try:
            started = time.monotonic()
            control_plane.config = cluster.apiserver_config(AUTHORIZATION_CONFIG)
            control_plane.start_apiserver()
            control_plane.kubectl("apply", "-f", str(REPO / "deploy" / "rbac.yaml"))
            for role in ("gatekeeper", "gatekeeper-quota-controller"):
                control_plane.kubectl(
                    "create",
                    "clusterrolebinding",
                    f"{role}-e2e-user",
                    f"--clusterrole={role}",
                    f"--user={GATEKEEPER_USER}",
                )
            gatekeeper.start()
            cluster.admission_webhooks(registered=True)
            control_plane.start_controller_manager()
            wait_for(
                lambda: control_plane.get("serviceaccount", "default", "-n", "default"),
                timeout=60,
                interval=0.5,
                tolerate=(AssertionError,),
            )
            cluster.notes.append(f"control plane and gatekeeper ready in {time.monotonic() - started:.1f} s")
            yield cluster
        except BaseException:
            print(cluster.tails(), file=sys.stderr)
            raise
        finally:
            gatekeeper.stop()
            control_plane.stop()
