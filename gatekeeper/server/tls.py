"""TLS for the server: the certificate, and the client CA that verifies optional client certificates.

A client certificate is optional per connection (CERT_OPTIONAL): a caller without one may still
use a token or basic auth. A certificate that is presented must verify against the client CA,
or OpenSSL ends the handshake. TLS 1.2 is the oldest version accepted, and with it only ECDHE
key exchange with an AEAD cipher (AES-GCM, ChaCha20-Poly1305): no CBC, no static RSA, no DHE.
TLS 1.3 (all of whose suites are AEAD) is what a current client negotiates. Python's server
context disables compression. The HTTP protocol class (server/protocol.py) hands the verified
certificate to the app, which verifies it again (authn/x509.py) before it names anyone.

Rotation without a restart: the listening socket's context has an SNI callback (OpenSSL calls it
for every handshake, with or without SNI) that hands the handshake the current context. When the
certificate, key or client CA file has changed, the callback first builds a new context from
them; if that fails (a key that does not match its certificate, a half-written file) the old one
stays in force and the error is logged. A connection keeps the context it was made with, so
connections in flight finish undisturbed; only new handshakes see the new certificate and CA.
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gatekeeper.config import Settings
from gatekeeper.server.connections import ConnectionLimits, loop_factory
from gatekeeper.server.protocol import TLSProtocol
from gatekeeper.server.reload import stamp_of

log = logging.getLogger("gatekeeper.tls")

# TLS 1.2 suites (OpenSSL names): ECDHE with AES-GCM or ChaCha20-Poly1305, as Go's secure defaults.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def uvicorn_server_options(settings: Settings, open_files: int) -> dict[str, Any]:
    """Keyword arguments for uvicorn.run: TLS, and the connection limits (server/connections.py)."""
    limits = ConnectionLimits.from_settings(settings, open_files)
    protocol: Callable[..., Any] = TLSProtocol
    return {
        **uvicorn_tls_options(settings),
        "http": functools.partial(protocol, limits=limits),  # pickles into worker processes
        "loop": loop_factory(settings.tls_handshake_timeout),
        "timeout_keep_alive": settings.idle_timeout,
        "h11_max_incomplete_event_size": settings.max_request_header_bytes,  # the h11 fallback's
    }


def uvicorn_tls_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for uvicorn.run/Config: certificate, client CA, and the TLS-aware protocol."""
    options: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_cert_file),
        "ssl_keyfile": str(settings.tls_private_key_file),
        "ssl_context_factory": rotating_context,
        "http": TLSProtocol,
    }
    if settings.client_ca_file:
        # Optional per connection: a caller without a certificate may still use a token.
        options["ssl_ca_certs"] = str(settings.client_ca_file)
        options["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
    return options


def rotating_context(config: Any, build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's ssl_context_factory (module level, so worker processes can unpickle it)."""
    paths = [Path(p) for p in (config.ssl_certfile, config.ssl_keyfile, config.ssl_ca_certs) if p]
    return RotatingContext(paths, functools.partial(_aead_only, build)).listening


def _aead_only(build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    context = build()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)  # TLS 1.2 only; TLS 1.3's suites are all AEAD
    return context


class RotatingContext:
    """The context of the listening socket, which hands each handshake the current one."""

    def __init__(self, paths: list[Path], build: Callable[[], ssl.SSLContext]) -> None:
        self.paths = paths
        self._build = build
        self._lock = threading.Lock()
        self._stamp = stamp_of(paths)
        self.current = build()
        self.listening = build()
        self.listening.sni_callback = self._select

    def _select(self, ssl_object: ssl.SSLObject, _server_name: str | None, _context: ssl.SSLContext) -> None:
        self._refresh()
        ssl_object.context = self.current
        return None

    def _refresh(self) -> None:
        stamp = stamp_of(self.paths)
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                self.current = self._build()
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.error("new TLS files refused, keeping the certificate and client CA in force: %s", exc)
                return
        log.info("TLS certificate, key and client CA reloaded from %s", ", ".join(map(str, self.paths)))
