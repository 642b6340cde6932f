"""Run a real `gatekeeper serve` on loopback for a test, and talk to it over real TLS.

gatekeeper authenticates its callers. `server.client()` presents, by default, the dev client
certificate of user "kube-apiserver" that `gatekeeper serve` creates in its cert dir on first run,
which serve's default `--webhook-callers user:kube-apiserver` lets call every webhook path and its
default `--metrics-readers` lets read /metrics and /quota, whatever the ABAC policy says. A test
that calls as someone else passes those flags (`--webhook-callers user:kube-apiserver,user:alice`).

Other identities: `server.client(cert=None)` presents nothing (anonymous, or token/basic auth via
headers=...); `server.client_as("alice", groups=["dev"])` presents a certificate for alice issued
by the same dev CA.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gatekeeper import pki
from tests.support.processes import stop

REPO_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_USER = pki.DEV_CLIENT  # "kube-apiserver"
_DEFAULT: Any = object()  # "the kube-apiserver dev certificate, if the cert dir has one"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    cert_dir: Path
    log_path: Path

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / "ca.crt"

    @property
    def default_cert(self) -> tuple[str, str] | None:
        """The kube-apiserver dev client certificate `serve` made in the cert dir (None if absent)."""
        pair = pki.pair(self.cert_dir, pki.client_stem(DEFAULT_USER))
        return (str(pair.cert), str(pair.key)) if pair.cert.exists() and pair.key.exists() else None

    def client(self, cert: tuple[str, str] | None = _DEFAULT, **kwargs: Any) -> httpx.Client:
        """An HTTPS client that trusts the server's CA and presents `cert`.

        By default the kube-apiserver dev client certificate; cert=None presents no certificate.
        """
        if cert is _DEFAULT:
            cert = self.default_cert
        return httpx.Client(base_url=self.url, verify=self.tls_context(cert), timeout=10, **kwargs)

    def tls_context(self, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
        """Trusts the server's CA and presents `cert` (httpx 0.28 ignores cert= next to verify=PATH)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if cert is not None:
            context.load_cert_chain(cert[0], cert[1])
        return context

    def client_cert(self, user: str, groups: Sequence[str] = (), uid: str = "") -> tuple[str, str]:
        """A client certificate for `user`, issued by the server's dev CA (cert dir ca.crt/ca.key)."""
        out = self.cert_dir.parent / "test-clients"
        ca = pki.load(pki.pair(self.cert_dir, pki.CA_NAME))
        stem = pki.client_stem(f"{user}-{'-'.join(groups)}-{uid}")
        pair = pki.write(pki.issue_client(ca, user, groups, uid), out, stem)
        return str(pair.cert), str(pair.key)

    def client_as(self, user: str, groups: Sequence[str] = (), uid: str = "", **kwargs: Any) -> httpx.Client:
        """An HTTPS client that presents a dev-CA certificate for `user` (CN) in `groups` (O)."""
        return self.client(cert=self.client_cert(user, groups, uid), **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_server(
    workdir: Path, args: Sequence[str] = (), cert_dir: Path | None = None, ready_timeout: float = 20.0,
    preexec_fn: Callable[[], None] | None = None, module: str = "gatekeeper.cli",
) -> Iterator[Server]:
    """Start `gatekeeper serve` in `workdir` (relative paths resolve there) and wait for /healthz.

    preexec_fn runs in the child before serve starts (e.g. to lower its open file limit); `module`
    is what `python -m` runs (a tests/support module that registers a plugin, then runs the CLI)."""
    port = free_port()
    cert_dir = cert_dir or workdir / "certs"
    log_path = workdir / f"server-{port}.log"
    command = [
        sys.executable, "-m", module, "serve",
        "--secure-port", str(port), "--cert-dir", str(cert_dir), "--reload-interval", "0.2", *args,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not module.startswith("gatekeeper."):  # a tests/ module: importable from the checkout's root
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn
        )
    server = Server(f"https://127.0.0.1:{port}", process, cert_dir, log_path)
    try:
        _wait_ready(server, ready_timeout)
        yield server
    finally:
        stop(process, timeout=10)


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gatekeeper serve exited with {server.process.returncode}:\n{server.log()}")
        if server.ca_file.exists():
            try:
                with server.client() as client:
                    if client.get("/healthz").status_code == 200:
                        return
            except (httpx.HTTPError, ssl.SSLError):  # ssl: ca.crt caught half written by serve
                pass
        time.sleep(0.1)
    raise RuntimeError(f"gatekeeper serve did not become ready in {timeout}s:\n{server.log()}")
