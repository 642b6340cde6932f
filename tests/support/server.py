"""Run a real `gatekeeper serve` on loopback for a test, and talk to it over real TLS."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


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

    def client(self, cert: tuple[str, str] | None = None, **kwargs: object) -> httpx.Client:
        """An HTTPS client that trusts the server's CA (and presents `cert` if given)."""
        return httpx.Client(base_url=self.url, verify=str(self.ca_file), cert=cert, timeout=10, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_server(
    workdir: Path, args: Sequence[str] = (), cert_dir: Path | None = None, ready_timeout: float = 20.0
) -> Iterator[Server]:
    """Start `gatekeeper serve` in `workdir` (relative paths resolve there) and wait for /healthz."""
    port = free_port()
    cert_dir = cert_dir or workdir / "certs"
    log_path = workdir / f"server-{port}.log"
    command = [
        sys.executable, "-m", "gatekeeper.cli", "serve",
        "--secure-port", str(port), "--cert-dir", str(cert_dir), "--reload-interval", "0.2", *args,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(f"https://127.0.0.1:{port}", process, cert_dir, log_path)
    try:
        _wait_ready(server, ready_timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"gatekeeper serve did not become ready in {timeout}s:\n{server.log()}")
