"""Certificates that cannot silently break: `certs init` keeps the hosts it issued before and says
what it did, `webhook-config` refuses a URL its serving certificate does not name, and a failed
TLS handshake is logged with the peer and the reason, once per peer per interval."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gatekeeper import pki
from tests.support.server import running_server
from tests.support.waiting import wait_for


def gatekeeper(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_certs_init_with_another_host_keeps_the_first_and_says_so(tmp_path: Path) -> None:
    first = gatekeeper("certs", "init", "--dir", "pki", "--host", "gatekeeper.example.com", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "pki/ca.crt (key pki/ca.key) created" in first.stdout
    assert "server: pki/server.crt (key pki/server.key) created" in first.stdout
    second = gatekeeper("certs", "init", "--dir", "pki", "--host", "other.example.com", cwd=tmp_path)
    assert "pki/ca.crt (key pki/ca.key) kept" in second.stdout
    assert "re-issued, hosts localhost, 127.0.0.1, ::1, gatekeeper.example.com, other.example.com; " in (
        second.stdout
    )
    assert "added other.example.com" in second.stdout
    assert "client: pki/kube-apiserver.crt (key pki/kube-apiserver.key) kept" in second.stdout
    hosts = pki.certificate_hosts(tmp_path / "pki" / "server.crt")
    assert {"gatekeeper.example.com", "other.example.com"} <= set(hosts)
    again = gatekeeper("certs", "init", "--dir", "pki", "--host", "other.example.com", cwd=tmp_path)
    assert "server: pki/server.crt (key pki/server.key) kept" in again.stdout
    forced = gatekeeper("certs", "init", "--dir", "pki", "--force", cwd=tmp_path)
    assert "pki/ca.crt (key pki/ca.key) created" in forced.stdout  # a new CA, but the same hosts
    assert {"gatekeeper.example.com", "other.example.com"} <= set(
        pki.certificate_hosts(tmp_path / "pki" / "server.crt")
    )


def test_webhook_config_refuses_a_host_the_serving_certificate_does_not_name(tmp_path: Path) -> None:
    assert (
        gatekeeper("certs", "init", "--dir", "pki", "--host", "a.example.com", cwd=tmp_path).returncode == 0
    )
    url = "https://gatekeeper.example.com:8443"
    refused = gatekeeper(
        "webhook-config", "--url", url, "--cert-dir", "pki", "--out-dir", "out", cwd=tmp_path
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"gatekeeper webhook-config: --url {url}: the serving certificate pki/server.crt does not name "
        "gatekeeper.example.com (it names localhost, 127.0.0.1, ::1, a.example.com); `gatekeeper certs init "
        "--dir pki --host gatekeeper.example.com` adds it (a running serve picks it up)"
    ]
    assert not (tmp_path / "out").exists()  # nothing written
    fixed = gatekeeper("certs", "init", "--dir", "pki", "--host", "gatekeeper.example.com", cwd=tmp_path)
    assert fixed.returncode == 0
    written = gatekeeper(
        "webhook-config", "--url", url, "--cert-dir", "pki", "--out-dir", "out", cwd=tmp_path
    )
    assert written.returncode == 0, written.stderr
    for ok in ("https://a.example.com", "https://127.0.0.1:9443", "https://[::1]:9443", "https://LOCALHOST"):
        result = gatekeeper(
            "webhook-config", "--url", ok, "--cert-dir", "pki", "--out-dir", "out", cwd=tmp_path
        )
        assert result.returncode == 0, (ok, result.stderr)


@pytest.mark.parametrize(
    ("names", "host", "covered"),
    [
        (("*.example.com",), "gk.example.com", True),
        (("*.example.com",), "a.gk.example.com", False),
        (("*.example.com",), "example.com", False),
        (("::1",), "0:0:0:0:0:0:0:1", True),
        (("10.0.0.1",), "10.0.0.2", False),
    ],
)
def test_a_host_is_covered_as_a_tls_client_checks_it(
    names: tuple[str, ...], host: str, covered: bool
) -> None:
    assert pki.covers(names, host) is covered


def test_a_client_certificate_of_another_ca_is_logged_once_with_peer_and_reason(tmp_path: Path) -> None:
    other = tmp_path / "other-ca"
    pki.ensure_dev_pki(other)
    stranger = pki.ensure_dev_client(other, "kube-apiserver")
    policy = tmp_path / "policy.jsonl"
    policy.write_text('{"user":"alice"}\n')
    args = ["--store", "memory://", "--authorization-policy-file", str(policy)]
    with running_server(tmp_path, args) as server:
        for _ in range(3):
            stranger_client = server.client(cert=(str(stranger.cert), str(stranger.key)))
            with pytest.raises((httpx.HTTPError, ssl.SSLError)), stranger_client as client:
                client.get("/healthz")
        line = wait_for(lambda: _handshake_lines(server.log()), timeout=10)
        with server.client() as client:  # the server is fine, and so are callers it knows
            assert client.get("/healthz").status_code == 200
        lines = _handshake_lines(server.log())
    assert len(lines) == 1, lines  # three failures from one address within the interval: one line
    (line,) = line
    assert "TLS handshake from 127.0.0.1:" in line
    assert "CERTIFICATE_VERIFY_FAILED" in line and "does not verify against --client-ca-file" in line


def _handshake_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "TLS handshake from" in line]
