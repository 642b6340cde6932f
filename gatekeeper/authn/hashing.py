"""Password hash checks on threads of their own, with a cap on how many may be in flight.

A check costs ~0.2 s of CPU on purpose, and anyone who can reach the port can ask for one (an
unknown user is hashed too, so that timing does not tell user names apart). In asyncio's default
executor such checks queued without bound in front of everything else that used it, the file
poller and SIGHUP among them: a flood of bogus passwords kept a revoked token valid for 38 s and
a correct login waited 24 s. Here the checks have `limit` threads and a count of the checks
queued or running; one beyond `limit` is refused at once with HashingBusy, before any hashing,
and the server answers it 429 as kube-apiserver's max-in-flight filter does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from gatekeeper.errors import Busy

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_LIMIT = 2


class HashingBusy(Busy):
    """`limit` password checks are already in flight: try again later (nothing was hashed)."""


class HashPool:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("the password hashing limit must be at least 1")
        self.limit = limit
        self._in_flight = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="gatekeeper-hash")

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """fn(*args, **kwargs) on the pool; HashingBusy at once if `limit` are in flight."""
        with self._lock:
            if self._in_flight >= self.limit:
                raise HashingBusy(f"{self.limit} password checks in flight")
            self._in_flight += 1
        try:
            future = self._executor.submit(fn, *args, **kwargs)
        except BaseException:
            self._release()
            raise
        # The slot is held until the check ends, even if the request gives up waiting: a
        # cancelled await does not stop the thread, and the cap counts work, not waiters.
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _future: Future[Any] | None = None) -> None:
        with self._lock:
            self._in_flight -= 1

    def shutdown(self) -> None:
        """Drop queued checks and let running ones finish on their own (at process exit)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
