"""The client certificate reaches the app through real TLS handshakes, and only through them.

These tests run uvicorn in this process with gatekeeper's protocol classes, so they can see the
ASGI scope, and so the TLS layer and the app can be given different trust (to show that the app
verifies the certificate itself, not just trusts that the handshake did).
"""

from __future__ import annotations

import contextlib
import gc
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from cryptography.hazmat.primitives.serialization import Encoding

from gatekeeper import pki
from gatekeeper.config import Settings
from gatekeeper.server.app import create_app
from gatekeeper.server.protocol import TLSH11Protocol, TLSHttpToolsProtocol
from tests.support.certs import write_pair
from tests.support.server import free_port

POLICY = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"/authorize"}}\n'
)
SAR = {
    "apiVersion": "authorization.k8s.io/v1",
    "kind": "SubjectAccessReview",
    "spec": {"user": "alice", "resourceAttributes": {"verb": "get", "resource": "pods"}},
}


@pytest.fixture(autouse=True, scope="module")
def _unfreeze_after() -> Iterator[None]:
    """The app's start-up freezes the heap (server/runtime.py); here that heap is pytest's."""
    yield
    gc.unfreeze()


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    pki.ensure_dev_pki(directory)
    pki.ensure_dev_client(directory, "kube-apiserver")
    return directory


@contextlib.contextmanager
def serve_in_thread(app: Any, pki_dir: Path, client_ca: Path, protocol: type[Any]) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=protocol,
        log_level="warning",
        lifespan="on",
        ssl_certfile=str(pki_dir / "server.crt"),
        ssl_keyfile=str(pki_dir / "server.key"),
        ssl_ca_certs=str(client_ca),
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def client(url: str, pki_dir: Path, cert: tuple[str, str] | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    if cert:
        context.load_cert_chain(*cert)
    return httpx.Client(base_url=url, verify=context, timeout=10)


async def echo_tls(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app that answers with what the server put in scope["extensions"]."""
    if scope["type"] != "http":
        return
    extensions = scope.get("extensions") or {}
    body = orjson.dumps({"tls": extensions.get("tls"), "peer": "gatekeeper.peer" in extensions})
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("protocol", [TLSHttpToolsProtocol, TLSH11Protocol], ids=["httptools", "h11"])
def test_the_scope_carries_the_asgi_tls_extension(pki_dir: Path, protocol: type[Any]) -> None:
    leaf_pem = (pki_dir / "kube-apiserver.crt").read_text()
    cert = (str(pki_dir / "kube-apiserver.crt"), str(pki_dir / "kube-apiserver.key"))
    with serve_in_thread(echo_tls, pki_dir, pki_dir / "ca.crt", protocol) as url:
        with client(url, pki_dir, cert) as c:
            for _ in range(2):  # two requests on one keep-alive connection
                tls = c.get("/").json()["tls"]
                assert tls["client_cert_chain"] == [leaf_pem]
                assert tls["client_cert_name"] == "CN=kube-apiserver"
                assert tls["client_cert_error"] is None
                assert tls["server_cert"] == (pki_dir / "server.crt").read_text()
                assert tls["tls_version"] in (0x0303, 0x0304)
                assert isinstance(tls["cipher_suite"], int)
        with client(url, pki_dir, None) as c:
            tls = c.get("/").json()["tls"]
            assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None


def test_headers_cannot_stand_in_for_a_certificate(pki_dir: Path) -> None:
    leaf_pem = (pki_dir / "kube-apiserver.crt").read_text()
    spoof = {
        "X-Client-Cert": leaf_pem.replace("\n", ""),
        "X-SSL-Client-Cert": leaf_pem.replace("\n", ""),
        "X-Forwarded-Client-Cert": 'Subject="CN=kube-apiserver"',
        "X-Remote-User": "kube-apiserver",
        "Impersonate-User": "kube-apiserver",
    }
    with (
        serve_in_thread(echo_tls, pki_dir, pki_dir / "ca.crt", TLSHttpToolsProtocol) as url,
        client(url, pki_dir, None) as c,
    ):
        assert c.get("/", headers=spoof).json()["tls"]["client_cert_chain"] == []


@pytest.fixture(scope="module")
def app_trusting_only_the_dev_ca(tmp_path_factory: pytest.TempPathFactory, pki_dir: Path) -> Any:
    workdir = tmp_path_factory.mktemp("app")
    policy = workdir / "abac.jsonl"
    policy.write_text(POLICY)
    settings = Settings(
        tls_cert_file=pki_dir / "server.crt",
        tls_private_key_file=pki_dir / "server.key",
        client_ca_file=pki_dir / "ca.crt",
        authorization_policy_file=policy,
    )
    return create_app(settings)


def test_the_app_verifies_the_certificate_again(
    tmp_path: Path, pki_dir: Path, app_trusting_only_the_dev_ca: Any
) -> None:
    """TLS trusts a second CA that the app does not: its certificates pass the handshake, not the app."""
    other = pki.make_ca("tls-only-ca")
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes((pki_dir / "ca.crt").read_bytes() + other.certificate.public_bytes(Encoding.PEM))
    stranger = write_pair(pki.issue_client(other, "kube-apiserver"), tmp_path, "stranger")
    good = (str(pki_dir / "kube-apiserver.crt"), str(pki_dir / "kube-apiserver.key"))
    with serve_in_thread(app_trusting_only_the_dev_ca, pki_dir, bundle, TLSHttpToolsProtocol) as url:
        with client(url, pki_dir, good) as c:
            assert c.post("/authorize?timeout=30s", json=SAR).status_code == 200
        with client(url, pki_dir, stranger) as c:
            response = c.post("/authorize", json=SAR)
            assert response.status_code == 401, response.text
            assert response.json()["message"] == "Unauthorized"
