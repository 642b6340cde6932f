"""Connection hygiene as kube-apiserver's Go server has it: every connection is bounded in time and size.

kube-apiserver (k8s.io/apiserver's secure serving) sets ReadHeaderTimeout 32 s, IdleTimeout 90 s and
MaxHeaderBytes 1 MiB; Go's TLS handshakes time out after 10 s. gatekeeper does the same, each a flag:

- TLS handshake: the event loop's ssl_handshake_timeout (the loop below; asyncio's default is 60 s).
- Request head: from the end of the handshake, or from the first byte of a keep-alive connection's
  next request, until the head is complete (server/protocol.py). A client that sent part of a head,
  or nothing, is closed without an answer, as Go does.
- Head size: at most max_header_bytes of request line and header fields; past that the connection
  is answered 431 and closed, before the parser has buffered more.
- Idle: uvicorn's keep-alive timeout, between a response and the next request.
- Open connections per worker: at the cap, a new connection closes the connection that has waited
  longest for a request head (idle, or sending one slowly); only when every connection is inside a
  request is the new one closed instead. A flood of slow connections therefore cannot lock out a
  caller that sends its request at once (kube-apiserver). The cap is checked once the handshake is
  done (only then does a connection reach the protocol); sockets still in a handshake are bounded by
  the handshake timeout.

File descriptors: each connection is one. `raise_open_file_limit` lifts the soft RLIMIT_NOFILE to
the hard limit at start-up, and `fit_open_connections` lowers the cap to leave FD_RESERVE
descriptors for everything else (listening socket, event loop, logs, the store's files, API server
and etcd connections, handshakes in progress), so that the cap, not EMFILE, decides who is refused.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
import ssl
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gatekeeper.config import Settings

try:
    from uvloop import Loop as _BaseLoop
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard] on Linux
    _BaseLoop = asyncio.SelectorEventLoop  # type: ignore[assignment,misc]

log = logging.getLogger("gatekeeper.connections")

FD_RESERVE = 64  # descriptors a worker keeps for everything but client connections
_REFUSAL_LOG_INTERVAL = 10.0  # seconds between warnings about the cap, however many it refused


@dataclass(frozen=True)
class ConnectionLimits:
    """What server/protocol.py enforces per connection; the values are the settings' (their defaults
    kube-apiserver's)."""

    header_timeout: float
    max_header_bytes: int
    max_open: int

    @classmethod
    def from_settings(cls, settings: Settings, open_files: int | None = None) -> ConnectionLimits:
        """The limits `settings` ask for; the connection cap lowered to fit `open_files`, if given."""
        max_open = settings.max_open_connections
        return cls(
            header_timeout=settings.request_header_timeout,
            max_header_bytes=settings.max_request_header_bytes,
            max_open=max_open if open_files is None else fit_open_connections(max_open, open_files),
        )


def raise_open_file_limit() -> int:
    """Lift the soft open-file limit to the hard one where allowed; the soft limit in force after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("open file limit stays at %d: raising it to %d failed: %s", soft, target, exc)
            return soft
        log.info("open file limit raised from %d to %d (the hard limit)", soft, target)
        return target
    log.info("open file limit: %d (the hard limit is %d)", soft, hard)
    return soft


def fit_open_connections(wanted: int, open_files: int) -> int:
    """The per-worker connection cap that leaves FD_RESERVE descriptors free (at least 1)."""
    room = max(1, open_files - FD_RESERVE)
    if wanted > room:
        log.warning(
            "--max-open-connections %d lowered to %d: the open file limit is %d and a worker keeps %d "
            "descriptors for its files and outgoing connections (raise the hard limit, ulimit -Hn)",
            wanted, room, open_files, FD_RESERVE,
        )
        return room
    return wanted


class Waiting:
    """A worker's connections that wait for a request head, longest-waiting first.

    These are the ones the cap may close: no request of theirs is in progress."""

    def __init__(self) -> None:
        self._order: dict[Any, None] = {}

    def add(self, connection: Any) -> None:
        self._order.pop(connection, None)
        self._order[connection] = None

    def discard(self, connection: Any) -> None:
        self._order.pop(connection, None)

    def oldest(self) -> Any | None:
        return next(iter(self._order), None)


_waiting: weakref.WeakKeyDictionary[Any, Waiting] = weakref.WeakKeyDictionary()


def waiting_of(server_state: Any) -> Waiting:
    """The Waiting of one uvicorn server (one per worker process)."""
    found = _waiting.get(server_state)
    if found is None:
        found = _waiting[server_state] = Waiting()
    return found


class _RefusalLog:
    """One warning per interval about connections the cap closed, with how many."""

    def __init__(self) -> None:
        self._count = 0
        self._last = float("-inf")

    def note(self, cap: int) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= _REFUSAL_LOG_INTERVAL:
            log.warning(
                "%d open connections per worker (--max-open-connections): closed %d connection(s) "
                "since the last warning, longest-waiting first", cap, self._count,
            )
            self._count, self._last = 0, now


refusals = _RefusalLog()


def loop_factory(handshake_timeout: float) -> Callable[[], asyncio.AbstractEventLoop]:
    """uvicorn's `loop`: uvloop (asyncio without it) whose TLS servers time out their handshakes.

    A partial of a module-level function, so it pickles into uvicorn's worker processes."""
    return functools.partial(new_event_loop, handshake_timeout)


def new_event_loop(handshake_timeout: float) -> asyncio.AbstractEventLoop:
    loop = HandshakeTimeoutLoop()
    loop.handshake_timeout = handshake_timeout
    return loop


class HandshakeTimeoutLoop(_BaseLoop):
    """Every TLS server this loop creates times out the handshakes of its connections, and runs
    them itself (HandshakeWatch) so that a failed one is logged."""

    handshake_timeout: float = Settings.model_fields["tls_handshake_timeout"].default

    async def create_server(self, protocol_factory: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
        context = kwargs.pop("ssl", None)
        if context is None:
            return await super().create_server(protocol_factory, *args, **kwargs)
        timeout = kwargs.pop("ssl_handshake_timeout", None) or self.handshake_timeout
        watch = functools.partial(HandshakeWatch, self, protocol_factory, context, timeout)
        return await super().create_server(watch, *args, **kwargs)


class HandshakeWatch(asyncio.Protocol):
    """The TCP side of a TLS connection until its handshake is done. uvloop's server-side TLS drops
    a failed handshake without a word (the caller sees "Empty reply from server"); run through
    loop.start_tls, the failure surfaces here with the peer's address, for handshake_failures."""

    def __init__(self, loop: asyncio.AbstractEventLoop, app_factory: Callable[[], Any],
                 context: ssl.SSLContext, timeout: float) -> None:
        self._loop, self._app_factory, self._context, self._timeout = loop, app_factory, context, timeout

    def connection_made(self, transport: Any) -> None:  # uvloop's TCPTransport, not an asyncio.Transport
        self._hello: list[bytes] = []
        self._task = self._loop.create_task(self._handshake(transport))

    def data_received(self, data: bytes) -> None:
        """uvloop reads before the task below starts: the ClientHello waits here."""
        self._hello.append(data)

    async def _handshake(self, transport: Any) -> None:
        early = _Early()
        # Runs after start_tls has put its TLS protocol on the transport, before it starts the handshake.
        self._loop.call_soon(self._hand_hello_over, transport)
        try:
            tls = await self._loop.start_tls(
                transport, early, self._context, server_side=True, ssl_handshake_timeout=self._timeout
            )
        except ssl.SSLError as exc:
            handshake_failures.note(transport.get_extra_info("peername"), exc)
            transport.abort()
            return
        except (OSError, TimeoutError):  # gone mid-handshake, or timed out: nothing to say
            transport.abort()
            return
        except asyncio.CancelledError:  # the server is shutting down
            transport.abort()
            raise
        if tls is not None and not early.lost:
            early.hand_over(tls, self._app_factory())

    def _hand_hello_over(self, transport: Any) -> None:
        protocol = transport.get_protocol()
        for data in self._hello:
            if hasattr(protocol, "buffer_updated"):  # uvloop's SSLProtocol is a buffered protocol
                view = memoryview(data)
                while view:
                    buffer = protocol.get_buffer(len(view))
                    size = min(len(buffer), len(view))
                    buffer[:size] = view[:size]
                    protocol.buffer_updated(size)
                    view = view[size:]
            else:
                protocol.data_received(data)
        self._hello.clear()


class _Early(asyncio.Protocol):
    """The TLS connection's protocol from the end of the handshake until the app's takes over: what
    the caller sends right after its handshake arrives before start_tls returns, and must wait."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        return True  # keep the connection: the app decides once it has it

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def hand_over(self, tls: Any, app: Any) -> None:
        tls.set_protocol(app)
        app.connection_made(tls)
        for chunk in self.data:
            if tls.is_closing():
                return
            app.data_received(chunk)
        if self.eof and not tls.is_closing() and not app.eof_received():
            tls.close()


# What an OpenSSL reason most often means for gatekeeper's callers.
_HANDSHAKE_HINTS = (
    ("CERTIFICATE_VERIFY_FAILED", "its client certificate does not verify against --client-ca-file"),
    ("UNKNOWN_CA", "it does not trust the serving certificate's CA (give it the caBundle of webhook-config)"),
    ("BAD_CERTIFICATE", "it refused the serving certificate (its CA, or --url's host not in its names)"),
    ("CERTIFICATE_UNKNOWN", "it refused the serving certificate (its CA, or --url's host not in its names)"),
    ("HTTP_REQUEST", "plain HTTP sent to the HTTPS port: use https://"),
    ("WRONG_VERSION_NUMBER", "not TLS, or a TLS version below 1.2"),
    ("UNSUPPORTED_PROTOCOL", "a TLS version below 1.2"),
    ("NO_SHARED_CIPHER", "no cipher in common (TLS 1.2 needs ECDHE with AES-GCM or ChaCha20-Poly1305)"),
)
_HANDSHAKE_LOG_INTERVAL = 60.0  # seconds between lines about one peer address
_HANDSHAKE_PEERS_KEPT = 1024  # addresses remembered; beyond, the oldest are forgotten


class _HandshakeLog:
    """One warning per peer address per interval, with how many more failed since the last."""

    def __init__(self) -> None:
        self._peers: dict[str, tuple[float, int]] = {}  # address -> (last logged, failures since)

    def note(self, peer: Any, exc: ssl.SSLError) -> None:
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown peer"
        now = time.monotonic()
        last, since = self._peers.get(address, (float("-inf"), 0))
        if now - last < _HANDSHAKE_LOG_INTERVAL:
            self._peers[address] = (last, since + 1)
            return
        self._peers.pop(address, None)
        self._peers[address] = (now, 0)
        if len(self._peers) > _HANDSHAKE_PEERS_KEPT:
            del self._peers[next(iter(self._peers))]
        reason = exc.reason or exc.strerror or str(exc)
        detail = getattr(exc, "verify_message", None)  # SSLCertVerificationError: which check failed
        if detail:
            reason = f"{reason}: {detail}"
        hint = next((h for key, h in _HANDSHAKE_HINTS if key in reason), "")
        more = f"; {since} more from {address} since the last line" if since else ""
        log.warning("TLS handshake from %s failed: %s%s%s", _peer_text(peer), reason,
                    f" ({hint})" if hint else "", more)


def _peer_text(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return "unknown peer"


handshake_failures = _HandshakeLog()
