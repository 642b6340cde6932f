"""Certificate rotation without a restart, over real TLS handshakes.

The server runs from its own copies of a serving certificate, key and client CA. The test
replaces them with ones from a second CA (a new serving certificate and a new client CA), as
cert-manager or a Secret update would, and checks:

- new handshakes get the new serving certificate, and a client certificate of the new CA is
  accepted while one of the old CA is refused;
- a keep-alive connection opened before the rotation keeps working (in flight, it finishes);
- a broken replacement (a key that does not match the certificate) is refused and the
  certificate in force keeps serving.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gatekeeper import pki
from tests.support.server import Server, running_server

POLICY = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"*"}}\n'
)
SAR = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
       "spec": {"user": "x", "nonResourceAttributes": {"path": "/version", "verb": "get"}}}


@dataclass
class Authority:
    """A CA with a serving certificate for 127.0.0.1 and a kube-apiserver client certificate."""

    ca: pki.KeyPair
    server: pki.KeyPair
    client: pki.KeyPair

    @classmethod
    def make(cls, directory: Path, name: str) -> Authority:
        ca = pki.make_ca(f"rotation-{name}")
        return cls(
            pki.write(ca, directory, f"{name}-ca"),
            pki.write(pki.issue_server(ca, ["127.0.0.1", "localhost"]), directory, f"{name}-server"),
            pki.write(pki.issue_client(ca, "kube-apiserver", ()), directory, f"{name}-client"),
        )


@dataclass
class Setup:
    server: Server
    workdir: Path
    old: Authority
    new: Authority

    def install(self, cert: Path, key: Path, ca: Path) -> None:
        """Replace the served files, each by atomic rename, as a Secret volume update does."""
        for source, target in ((cert, "tls.crt"), (key, "tls.key"), (ca, "client-ca.crt")):
            staging = self.workdir / f".{target}.new"
            staging.write_bytes(source.read_bytes())
            os.replace(staging, self.workdir / target)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    old, new = Authority.make(tmp_path / "pki", "old"), Authority.make(tmp_path / "pki", "new")
    (tmp_path / "policy.jsonl").write_text(POLICY)
    served = ((old.server.cert, "tls.crt"), (old.server.key, "tls.key"), (old.ca.cert, "client-ca.crt"))
    for source, target in served:
        (tmp_path / target).write_bytes(source.read_bytes())
    args = ["--tls-cert-file", "tls.crt", "--tls-private-key-file", "tls.key",
            "--client-ca-file", "client-ca.crt", "--authorization-policy-file", "policy.jsonl",
            "--store", "memory://"]
    # running_server waits for /healthz trusting cert_dir/ca.crt: point it at the old CA
    cert_dir = tmp_path / "trust"
    cert_dir.mkdir()
    (cert_dir / "ca.crt").write_bytes(old.ca.cert.read_bytes())
    with running_server(tmp_path, args, cert_dir=cert_dir) as server:
        yield Setup(server, tmp_path, old, new)


def client(setup: Setup, trust: Authority, present: Authority | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(trust.ca.cert))
    if present is not None:
        context.load_cert_chain(str(present.client.cert), str(present.client.key))
    return httpx.Client(base_url=setup.server.url, verify=context, timeout=10)


def served_certificate(setup: Setup) -> bytes:
    """The DER certificate a fresh handshake gets (no verification: we only look at it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    host, port = setup.server.url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def der_of(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def wait_for_certificate(setup: Setup, path: Path) -> None:
    deadline = time.monotonic() + 10
    while served_certificate(setup) != der_of(path):
        if time.monotonic() > deadline:
            raise AssertionError(f"the server does not serve {path.name}")
        time.sleep(0.05)


def wait_until_authorized(c: httpx.Client) -> None:
    deadline = time.monotonic() + 10
    while not authorized(c):
        assert time.monotonic() < deadline, "the new client certificate is not accepted"
        time.sleep(0.05)


def authorized(c: httpx.Client) -> bool:
    response = c.post("/authorize", json=SAR)
    return response.status_code == 200


def test_new_certificate_and_client_ca_without_restart(setup: Setup) -> None:
    assert served_certificate(setup) == der_of(setup.old.server.cert)
    with client(setup, setup.old, setup.old) as in_flight:
        assert authorized(in_flight)  # a keep-alive connection, opened before the rotation

        setup.install(setup.new.server.cert, setup.new.server.key, setup.new.ca.cert)
        wait_for_certificate(setup, setup.new.server.cert)

        for _ in range(5):  # the connection in flight keeps its context and its verified caller
            assert authorized(in_flight)

    with client(setup, setup.new, setup.new) as fresh:
        wait_until_authorized(fresh)  # the app verifies the certificate again, against the CA it reloads
    # the old CA no longer verifies clients: the handshake fails, or the app says 401
    with client(setup, setup.new, setup.old) as old_client, contextlib.suppress(httpx.TransportError):
        assert old_client.post("/authorize", json=SAR).status_code == 401
    with client(setup, setup.old, setup.old) as trusts_old, pytest.raises(httpx.ConnectError):
        trusts_old.get("/healthz")  # the new serving certificate does not chain to the old CA


def test_a_key_that_does_not_match_is_refused_and_the_old_certificate_keeps_serving(setup: Setup) -> None:
    setup.install(setup.new.server.cert, setup.old.server.key, setup.old.ca.cert)  # mismatched pair
    deadline = time.monotonic() + 10
    while "new TLS files refused" not in setup.server.log():
        served_certificate(setup)  # handshakes are what notice the change
        assert time.monotonic() < deadline, setup.server.log()
        time.sleep(0.05)
    assert served_certificate(setup) == der_of(setup.old.server.cert)
    with client(setup, setup.old, setup.old) as c:
        assert authorized(c)

    setup.install(setup.new.server.cert, setup.new.server.key, setup.old.ca.cert)  # the fix arrives
    wait_for_certificate(setup, setup.new.server.cert)
    with client(setup, setup.new, setup.old) as c:
        assert authorized(c)
