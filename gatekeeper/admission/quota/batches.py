"""Group commit for the networked ledgers (etcd, and a live cluster's ResourceQuota status): the
charges of one namespace that arrive while its write is in flight wait, and the next write settles
all of them at once.

With one write per charge, a namespace can take one charge per round trip (for etcd, a Raft round
and fsync), and under load each round also waits for the GIL. Kubernetes' quota admission batches its waiters
for the same reason. The first caller for an idle key leads: it takes everything waiting (at most
`max_batch`), settles it, and hands the lead to the first caller still waiting, so no caller
leads for longer than its own batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gatekeeper.admission.quota.ledger import Change, Outcome, RequestKey, Used

T = TypeVar("T")


class ChargeInterrupted(Exception):
    """A charge's batch ended without deciding it (the ledger turns this into its own error)."""


@dataclass(eq=False)
class Charge:
    """One `apply` call, waiting for its namespace's next write."""

    request: RequestKey
    seeds: Mapping[str, Used]
    change: Change
    outcome: Outcome | None = None
    error: BaseException | None = None
    asked: float = field(default_factory=time.perf_counter)  # when it started to wait for its turn

    def result(self) -> Outcome:
        if self.error is not None:
            raise self.error
        if self.outcome is None:
            raise ChargeInterrupted("the quota charge was interrupted")
        return self.outcome


@dataclass(eq=False)
class _Waiter(Generic[T]):
    item: T
    wake: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    settled: bool = False


@dataclass(eq=False)
class _Line(Generic[T]):
    lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: list[_Waiter[T]] = field(default_factory=list)
    busy: bool = False  # invariant: not busy -> nobody waiting


class Turns(Generic[T]):
    def __init__(self, settle: Callable[[str, list[T]], None], max_batch: int) -> None:
        """`settle(key, items)` must record a result on every item, and never raise."""
        self._settle = settle
        self._max_batch = max_batch
        self._lines: dict[str, _Line[T]] = {}
        self._lock = threading.Lock()

    def run(self, key: str, item: T) -> None:
        """Return once a batch holding `item` was settled, in this thread or in another."""
        waiter: _Waiter[T] = _Waiter(item)
        line = self._line(key)
        with line.lock:
            line.waiting.append(waiter)
            if not line.busy:
                line.busy = waiter.leads = True
        if not waiter.leads:
            waiter.wake.wait()
        if not waiter.settled:  # it leads, from the start or handed over, and is first in line
            self._lead(key, line)

    def _lead(self, key: str, line: _Line[T]) -> None:
        with line.lock:
            batch, line.waiting = line.waiting[: self._max_batch], line.waiting[self._max_batch :]
        try:
            self._settle(key, [waiter.item for waiter in batch])
        finally:
            with line.lock:
                if line.waiting:
                    line.waiting[0].leads = True
                    line.waiting[0].wake.set()
                else:
                    line.busy = False
            for waiter in batch:
                waiter.settled = True
                waiter.wake.set()

    def _line(self, key: str) -> _Line[T]:
        with self._lock:
            return self._lines.setdefault(key, _Line())


def charge_in_turn(
    turns: Turns[Charge],
    namespace: str,
    charge: Charge,
    interrupted: Callable[[str], Exception],
) -> Outcome:
    """A batched ledger's `apply`: wait for `namespace`'s turn, then the charge's outcome; a batch
    that ended without deciding it raises `interrupted(why)`, the ledger's own outage error."""
    turns.run(namespace, charge)
    try:
        return charge.result()
    except ChargeInterrupted as exc:
        raise interrupted(str(exc)) from None


def record_waits(charges: list[Charge], lock_wait: Callable[[float], None]) -> None:
    """How long each charge of a batch waited for its turn, as the batch starts to settle."""
    started = time.perf_counter()
    for charge in charges:
        lock_wait(started - charge.asked)
