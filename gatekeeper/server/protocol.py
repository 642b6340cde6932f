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

The httptools protocol also enforces the connection limits of server/connections.py: the request
head's timeout and size (431), and the per-worker cap on open connections.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

from gatekeeper.authn.x509 import PeerCertificates
from gatekeeper.config import Settings
from gatekeeper.server.connections import ConnectionLimits, refusals, waiting_of
from gatekeeper.server.responses import status_body

try:
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

TLS_EXTENSION = "tls"
PEER_EXTENSION = "gatekeeper.peer"
_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_NO_PEER = PeerCertificates(())
_PLAIN: dict[str, Any] = {PEER_EXTENSION: _NO_PEER}
DEFAULT_LIMITS = ConnectionLimits.from_settings(Settings())
_LINGER = 0.5  # seconds a refused connection's input is drained before it closes


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
    """The fallback without httptools: uvicorn's h11 limits the head (h11_max_incomplete_event_size,
    answered 400) and idle connections; the head timeout and the connection cap need httptools."""

    def __init__(self, *args: Any, limits: ConnectionLimits = DEFAULT_LIMITS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

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
        """The TLS extensions, and the limits of server/connections.py on every connection.

        `_head_room` is how many more bytes the current request head may take, or None while a
        request whose head is complete is read and answered; `_head_timer` closes the connection
        when its head is not complete in time."""

        _tls_extensions: dict[str, Any] = _PLAIN

        def __init__(self, *args: Any, limits: ConnectionLimits = DEFAULT_LIMITS, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._limits = limits
            self._waiting = waiting_of(self.server_state)
            self._head_room: int | None = limits.max_header_bytes
            self._head_timer: asyncio.TimerHandle | None = None
            self._heads = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(CoalescingTransport(transport))  # type: ignore[arg-type]  # duck-typed
            self._tls_extensions = connection_extensions(transport, _certfile(self.config))
            if not self._admit():
                return
            self._waiting.add(self)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._waiting.discard(self)
            self._cancel_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            room = self._head_room
            if room is None:
                super().data_received(data)
                return
            if self._head_timer is None:  # the first byte after an idle wait starts the head's clock
                self._arm_head_timer()
            if len(data) <= room:
                self._head_room = room - len(data)
                super().data_received(data)
                return
            heads = self._heads
            super().data_received(data[:room])  # the parser never buffers more of a head than allowed
            if self.transport.is_closing():
                return
            if self._heads == heads:
                self._refuse_large_head()
                return
            self.data_received(data[room:])

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope["extensions"] = dict(self._tls_extensions)

        def on_headers_complete(self) -> None:
            self._heads += 1
            self._head_room = None
            self._cancel_head_timer()
            self._waiting.discard(self)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._head_room = self._limits.max_header_bytes  # what follows is the next request's head

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and not self.pipeline:
                self._waiting.add(self)  # idle: uvicorn's keep-alive (idle) timeout runs

        def _admit(self) -> bool:
            """Within the cap, or at it with a waiting connection to close instead: True."""
            if len(self.connections) <= self._limits.max_open:
                return True
            refusals.note(self._limits.max_open)
            oldest = self._waiting.oldest()
            if oldest is not None:
                self._waiting.discard(oldest)
                oldest.transport.close()
                return True
            self.transport.close()
            return False

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(self._limits.header_timeout, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():  # as Go: a read timeout gets no answer
                self.transport.close()

        def _refuse_large_head(self) -> None:
            self._head_room = None
            self._cancel_head_timer()
            if self.cycle is not None and not self.cycle.response_complete:
                self.transport.close()  # a pipelined head: a 431 now would cut into the answer in progress
                return
            limit = self._limits.max_header_bytes
            message = f"request header fields are larger than {limit} bytes"
            body = orjson.dumps(status_body(431, "RequestHeaderFieldsTooLarge", message))
            head = [STATUS_LINE[431]]
            for name, value in self.server_state.default_headers:
                head.extend([name, b": ", value, b"\r\n"])
            head.append(b"content-type: application/json\r\nconnection: close\r\n")
            head.append(b"content-length: %d\r\n\r\n" % len(body))
            self.transport.write(b"".join([*head, body]))
            self._discard_until_closed()

        def _discard_until_closed(self) -> None:
            """Read and drop what still comes for a moment, then close: closing with unread input
            would reset the connection and could destroy the 431 before the client reads it (Go
            waits 500 ms for the same reason, closeWriteAndWait)."""
            self.parser = _Discard(self._limits.max_header_bytes, self.transport.close)  # type: ignore[assignment]
            self.loop.call_later(_LINGER, self.transport.close)

    TLSProtocol: type[Any] = TLSHttpToolsProtocol
else:  # pragma: no cover
    TLSProtocol = TLSH11Protocol


class _Discard:
    """Stands in for the parser after a refusal: input is read and dropped, up to `budget` bytes;
    a client that keeps sending past it is closed at once rather than drained for the linger."""

    def __init__(self, budget: int, close: Callable[[], None]) -> None:
        self._budget, self._close = budget, close

    def feed_data(self, data: bytes) -> None:
        self._budget -= len(data)
        if self._budget < 0:
            self._close()
