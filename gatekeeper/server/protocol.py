"""uvicorn HTTP protocols that give the app the connection's TLS details (the ASGI TLS extension).

uvicorn does not put the client certificate in the ASGI scope. These subclasses read it from the
connection's SSL object once, when the connection is made, and add to every request's scope:

    scope["extensions"]["tls"] = {
        "server_cert": PEM,                  # the serving certificate (uvicorn's ssl_certfile)
        "client_cert_chain": [PEM, ...],     # leaf first; [] if the client sent no certificate
        "client_cert_name": "CN=...,O=...",  # RFC 4514, or None
        "client_cert_error": None,           # a presented certificate always verified (CERT_OPTIONAL)
        "tls_version": 0x0304,               # or None
        "cipher_suite": 0x1301,              # IANA id, or None
    }
    scope["extensions"]["gatekeeper.peer"] = PeerCertificates  # the same chain, with a per-connection cache

The certificate comes from the TLS session only; nothing a client sends in a header can set it.
Python before 3.13 exposes just the leaf of the client's chain, so the list has one element
there (the ASGI spec allows that); with 3.13+ the intermediates the client sent follow it.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from gatekeeper.authn.x509 import PeerCertificates

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

TLS_EXTENSION = "tls"
PEER_EXTENSION = "gatekeeper.peer"
_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_NO_PEER = PeerCertificates(())
_PLAIN: dict[str, Any] = {PEER_EXTENSION: _NO_PEER}


def connection_extensions(transport: Any, server_certfile: str | None = None) -> dict[str, Any]:
    """The scope extensions for one connection (plain HTTP: only an empty peer)."""
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return _PLAIN
    chain = _peer_chain(ssl_object)
    peer = PeerCertificates(chain) if chain else _NO_PEER
    return {
        TLS_EXTENSION: {
            "server_cert": _server_cert(server_certfile),
            "client_cert_chain": list(chain),
            "client_cert_name": _subject_name(chain[0]) if chain else None,
            "client_cert_error": None,
            "tls_version": _VERSIONS.get(ssl_object.version() or ""),
            "cipher_suite": _cipher_id(ssl_object),
        },
        PEER_EXTENSION: peer,
    }


def peer_certificates(scope: Mapping[str, Any]) -> PeerCertificates:
    """The client's certificates of a request: ours if present, else from a server's TLS extension."""
    extensions = scope.get("extensions") or {}
    peer = extensions.get(PEER_EXTENSION)
    if isinstance(peer, PeerCertificates):
        return peer
    tls = extensions.get(TLS_EXTENSION)
    if isinstance(tls, dict) and tls.get("client_cert_chain"):
        return PeerCertificates([str(pem) for pem in tls["client_cert_chain"]])
    return _NO_PEER


def _peer_chain(ssl_object: ssl.SSLObject) -> tuple[str, ...]:
    get_chain = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+
    if get_chain is not None:
        return tuple(ssl.DER_cert_to_PEM_cert(_der(c)) for c in get_chain() or ())
    der = ssl_object.getpeercert(binary_form=True)
    return (ssl.DER_cert_to_PEM_cert(der),) if der else ()


def _der(cert: Any) -> bytes:
    if isinstance(cert, bytes):
        return cert
    return bytes(cert.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]


def _subject_name(pem: str) -> str | None:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii")).subject.rfc4514_string()
    except ValueError:
        return None


@functools.cache
def _server_cert(path: str | None) -> str | None:
    """The first certificate of the serving certificate file, as PEM (read once per process)."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    return text[start : stop + len(end)] + "\n" if start >= 0 and stop >= 0 else None


_cipher_ids: dict[str, int] = {}


def _cipher_id(ssl_object: ssl.SSLObject) -> int | None:
    cipher = ssl_object.cipher()
    if cipher is None:
        return None
    if not _cipher_ids:
        for entry in ssl_object.context.get_ciphers():
            _cipher_ids[entry["name"]] = int(entry["id"]) & 0xFFFF
    return _cipher_ids.get(cipher[0])


def _certfile(config: Any) -> str | None:
    path = getattr(config, "ssl_certfile", None)
    return str(path) if path else None


class _Extended:
    """Wraps the app for one connection: adds that connection's extensions to each scope (h11)."""

    __slots__ = ("app", "extensions")

    def __init__(self, app: Any, extensions: dict[str, Any]) -> None:
        self.app = app
        self.extensions = extensions

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["extensions"] = {**(scope.get("extensions") or {}), **self.extensions}
        await self.app(scope, receive, send)


class TLSH11Protocol(H11Protocol):
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.app = _Extended(self.app, connection_extensions(transport, _certfile(self.config)))


class CoalescingTransport:
    """A transport whose writes within one event-loop turn leave as one write.

    uvicorn writes a response's head and its body separately; over TLS each write is its own
    TLS record, encryption call and send() system call. Joined, a small webhook answer costs one
    of each. The joined bytes go out at the end of the current loop turn (call_soon), before any
    new input is read; close() sends what is pending first. Everything else is the transport's.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


if HttpToolsProtocol is not None:

    class TLSHttpToolsProtocol(HttpToolsProtocol):
        _tls_extensions: dict[str, Any] = _PLAIN

        def connection_made(self, transport: Any) -> None:
            super().connection_made(CoalescingTransport(transport))  # type: ignore[arg-type]  # duck-typed
            self._tls_extensions = connection_extensions(transport, _certfile(self.config))

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope["extensions"] = dict(self._tls_extensions)

    TLSProtocol: type[Any] = TLSHttpToolsProtocol
else:  # pragma: no cover
    TLSProtocol = TLSH11Protocol
