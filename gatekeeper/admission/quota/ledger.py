"""The quota ledger: how much of each ResourceQuota is used, changed atomically and once per request.

Kubernetes keeps `status.used` on the ResourceQuota object and charges it with a compare-and-swap in
etcd. gatekeeper keeps it in a ledger instead, so the manifests stay what the operator wrote:

* A quota's usage starts from its *seed*, the `status.used` of its manifest, the first time the
  ledger sees the quota; from then on the ledger's usage wins, so a restart, a manifest reload or
  a change of `hard` keeps what was charged. `reconcile` replaces it with a recount.
* `apply` reads the namespace's usage, asks `change` what the new usage is (or for a refusal), and
  writes it, all in one transaction, so two requests can never both take the last unit.
* `apply` runs at most once per request uid: a retried or reinvoked review is not charged twice.
  The uid is stored with a fingerprint of what the request asked for, so a uid reused for a
  different request is a conflict, not a free pass.

Quantities are stored as canonical strings; the arithmetic belongs to the caller (gatekeeper.admission.quota).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

Used = dict[str, str]
"""A quota's usage: resource name -> canonical quantity."""

NamespaceUsage = dict[str, Used]
"""Usage of every quota of one namespace: quota name -> Used."""

REMEMBER_REQUESTS_SECONDS = 24 * 3600
"""How long a request uid is remembered; kube-apiserver retries within seconds."""


@dataclass(frozen=True, slots=True)
class Refused:
    """`change` declines: nothing is written and the message goes back to the caller."""

    message: str


Change = Callable[[NamespaceUsage], NamespaceUsage | Refused]
"""Given the current usage of a namespace, the new usage of the quotas that change, or a refusal."""


class Applied(Enum):
    CHANGED = "changed"
    REPLAYED = "replayed"  # this request uid was applied before; nothing changed now
    REFUSED = "refused"
    CONFLICT = "conflict"  # this request uid was applied before to a different request


@dataclass(frozen=True, slots=True)
class RequestKey:
    """An admission request's uid, and a fingerprint of what it asks for (to catch a reused uid)."""

    uid: str
    fingerprint: str = ""


def replay(request: RequestKey, stored_fingerprint: str) -> Outcome:
    """The answer for a uid that was applied before."""
    if stored_fingerprint != request.fingerprint:
        return Outcome(
            Applied.CONFLICT, f"request uid {request.uid} was already charged for a different request"
        )
    return Outcome(Applied.REPLAYED)


@dataclass(frozen=True, slots=True)
class Outcome:
    applied: Applied
    message: str = ""


def ignore_wait(_seconds: float) -> None:
    """A ledger's `lock_wait` until someone wants to know."""


class QuotaLedger(Protocol):
    live: bool
    """True when usage is the ResourceQuota objects' own status.used in a live cluster, kept by its
    quota controller: quotas are enforced from status.hard only, and a new quota starts where the
    controller starts it. False for gatekeeper's own ledgers (memory, SQLite, etcd)."""

    lock_wait: Callable[[float], None]
    """Called with the seconds each `apply` waited for its turn to write (SQLite: this process's
    other charges, the flock, SQLite's lock; etcd and a live cluster: the namespace's write in
    flight), apart from the time it then held it. The server counts it in
    gatekeeper_quota_lock_wait_seconds."""

    def usage(self, namespace: str, seeds: Mapping[str, Used]) -> NamespaceUsage:
        """The current usage of the quotas named in `seeds` (quota name -> manifest status.used)."""
        ...

    def apply(
        self, namespace: str, request: RequestKey, seeds: Mapping[str, Used], change: Change
    ) -> Outcome:
        """Atomically: unless `request` was applied before, write what `change` returns."""
        ...

    def reconcile(self, usage: Mapping[tuple[str, str], Used]) -> None:
        """Replace the usage of every (namespace, quota) in `usage`, recomputed from live objects."""
        ...

    def close(self) -> None: ...


def forget_before(applied: dict[str, tuple[str, float]], cutoff: float) -> None:
    """Drop the uids applied before `cutoff` from uid -> (fingerprint, when), which is in insertion
    (= time) order."""
    while applied:
        oldest = next(iter(applied))
        if applied[oldest][1] >= cutoff:
            return
        del applied[oldest]


def current(rows: Mapping[str, Used], seeds: Mapping[str, Used]) -> NamespaceUsage:
    """Usage of each quota in `seeds`: the ledger's row if it has one, else the seed."""
    return {name: dict(rows.get(name, seed)) for name, seed in seeds.items()}
