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
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

try:
    from uvloop import Loop as _BaseLoop
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard] on Linux
    _BaseLoop = asyncio.SelectorEventLoop  # type: ignore[assignment,misc]

log = logging.getLogger("gatekeeper.connections")

FD_RESERVE = 64  # descriptors a worker keeps for everything but client connections
_REFUSAL_LOG_INTERVAL = 10.0  # seconds between warnings about the cap, however many it refused


@dataclass(frozen=True)
class ConnectionLimits:
    """What server/protocol.py enforces per connection (the defaults are kube-apiserver's)."""

    header_timeout: float = 32.0
    max_header_bytes: int = 1 << 20
    max_open: int = 1000


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
    """Every TLS server this loop creates times out the handshakes of its connections."""

    handshake_timeout: float = 10.0

    async def create_server(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", self.handshake_timeout)
        return await super().create_server(*args, **kwargs)
