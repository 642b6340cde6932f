"""The quota ledger in etcd, shared by every gatekeeper replica: compare-and-swap per namespace.

Keys under the store prefix (`/gatekeeper/` by default):
  quota/usage/<namespace>   JSON {quota name: {resource: canonical quantity}}
  quota/requests/<uid>      JSON {"fingerprint": ..., "namespace": ...}, on a lease that expires it
                            after REMEMBER_REQUESTS_SECONDS (plus up to LEASE_REUSE_SECONDS)

`apply` takes the namespace's usage as last seen, asks `change`, and writes the new usage and the uid
in one transaction that only succeeds if the usage key's mod_revision is still the one seen and the
uid key still does not exist; otherwise the transaction's failure branch returns the keys as they
are now, and the charges are decided again. So two requests (in any replicas) never both take the
last unit, and a uid is charged once: a retry whose first delivery did commit finds its own uid and
is REPLAYED. "Last seen" is this process's own last write when it has one (so an uncontended charge
is one round trip); a refusal is only ever decided on a fresh read.

Charges of one namespace that arrive together share a transaction (quota/batches.py): they are
decided in arrival order, each on the usage the ones before it left, and committed, or retried,
together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

import orjson

from gatekeeper.admission.quota.batches import Charge, Turns, charge_in_turn, record_waits
from gatekeeper.admission.quota.ledger import (
    REMEMBER_REQUESTS_SECONDS,
    Applied,
    Change,
    NamespaceUsage,
    Outcome,
    Refused,
    RequestKey,
    Used,
    current,
    ignore_wait,
    replay,
)
from gatekeeper.admission.state import StoreError
from gatekeeper.backends.etcd.client import (
    EtcdClient,
    KeyValue,
    absent,
    key_values,
    mod_revision_is,
    put_op,
    range_op,
)
from gatekeeper.backends.storable import decode_stored

MAX_ATTEMPTS = 200
LEASE_REUSE_SECONDS = 3600
MAX_BATCH = 60  # charges per transaction: 1 + 60 compares, puts or ranges, under etcd's 128


@dataclass(frozen=True, slots=True)
class Snapshot:
    rows: dict[str, Used]
    usage_revision: int  # 0: the namespace has no usage key yet
    fingerprints: dict[str, str]  # request uid -> fingerprint, of the uids read that were applied before


class EtcdLedger:
    live = False

    def __init__(self, client: EtcdClient, prefix: str) -> None:
        self._client = client
        self._prefix = prefix.encode()
        self._turns: Turns[Charge] = Turns(self._settle_all, MAX_BATCH)
        self.lock_wait: Callable[[float], None] = ignore_wait
        self._lease_lock = threading.Lock()
        self._lease: tuple[int, float] | None = None  # (id, granted at)
        # namespace -> its usage as this process last wrote it: the next charge tries its
        # compare-and-swap on it straight away, and reads only when another replica got there first
        self._known: dict[str, Snapshot] = {}

    def usage(self, namespace: str, seeds: Mapping[str, Used]) -> NamespaceUsage:
        kv = self._client.get(self._usage_key(namespace))
        return current(_rows(kv, namespace), seeds)

    def apply(
        self, namespace: str, request: RequestKey, seeds: Mapping[str, Used], change: Change
    ) -> Outcome:
        return charge_in_turn(self._turns, namespace, Charge(request, seeds, change), StoreError)

    def _settle_all(self, namespace: str, charges: list[Charge]) -> None:
        record_waits(charges, self.lock_wait)
        try:
            self._settle(namespace, charges)
        except Exception as exc:  # etcd unreachable, say: every undecided charge of the batch fails
            for charge in charges:
                if charge.outcome is None and charge.error is None:
                    charge.error = StoreError(str(exc)) if isinstance(exc, StoreError) else exc

    def _settle(self, namespace: str, charges: list[Charge]) -> None:
        pending = charges
        seen = self._known.get(namespace)
        fresh = seen is None
        if seen is None:
            seen = self._read(namespace, pending)
        for _ in range(MAX_ATTEMPTS):
            decision = _decide(seen, pending, fresh)
            pending = [charge for charge in pending if charge.error is None]
            if decision is None:  # a refusal decided on a memory: read what etcd holds now
                seen, fresh = self._read(namespace, pending), True
                continue
            rows, outcomes, accepted = decision
            if accepted:
                written, seen = self._write(namespace, seen, rows, accepted, pending)
                if not written:
                    fresh = True
                    continue
            for charge, outcome in outcomes:
                charge.outcome = outcome
            return
        raise _kept_changing(namespace)

    def _reads(self, namespace: str, charges: list[Charge]) -> list[dict[str, object]]:
        keys = [self._usage_key(namespace), *(self._request_key(c.request.uid) for c in charges)]
        return [range_op(key) for key in keys]

    def _read(self, namespace: str, charges: list[Charge]) -> Snapshot:
        responses = self._client.txn([], self._reads(namespace, charges)).responses
        return _snapshot(responses, namespace, charges)

    def _write(
        self,
        namespace: str,
        seen: Snapshot,
        rows: dict[str, Used],
        accepted: list[Charge],
        pending: list[Charge],
    ) -> tuple[bool, Snapshot]:
        """Compare-and-swap: (True, what was written), or (False, the keys as they are now)."""
        usage_key = self._usage_key(namespace)
        compare = [mod_revision_is(usage_key, seen.usage_revision)]
        compare += [absent(self._request_key(c.request.uid)) for c in accepted]
        try:
            lease = self._lease_id()
            writes = [put_op(usage_key, _json(rows))]
            writes += [
                put_op(self._request_key(c.request.uid), _remembered(c, namespace), lease) for c in accepted
            ]
            result = self._client.txn(compare, writes, self._reads(namespace, pending))
        except StoreError as exc:
            if "lease not found" not in str(exc):
                raise
            with self._lease_lock:  # etcd forgot the lease (restored from a backup, revoked by hand)
                self._lease = None
            return False, self._read(namespace, pending)
        if not result.succeeded:
            return False, _snapshot(result.responses, namespace, pending)
        written = Snapshot(rows, result.revision, {})  # every write of a txn gets its revision
        self._known[namespace] = written
        return True, written

    def reconcile(self, usage: Mapping[tuple[str, str], Used]) -> None:
        by_namespace: dict[str, dict[str, Used]] = {}
        for (namespace, name), used in usage.items():
            by_namespace.setdefault(namespace, {})[name] = dict(used)
        for namespace, replaced in by_namespace.items():
            self._replace(namespace, replaced)

    def close(self) -> None:
        pass  # the client belongs to the store

    def _replace(self, namespace: str, replaced: dict[str, Used]) -> None:
        key = self._usage_key(namespace)
        self._known.pop(namespace, None)
        for _ in range(MAX_ATTEMPTS):
            kv = self._client.get(key)
            rows = {**_rows(kv, namespace), **replaced}
            revision = kv.mod_revision if kv else 0
            if self._client.txn([mod_revision_is(key, revision)], [put_op(key, _json(rows))]).succeeded:
                return
        raise _kept_changing(namespace)

    def _lease_id(self) -> int:
        """One lease per process per hour for the request uids: a lease per charge would double the writes."""
        with self._lease_lock:
            now = time.monotonic()
            if self._lease is None or now - self._lease[1] > LEASE_REUSE_SECONDS:
                ttl = REMEMBER_REQUESTS_SECONDS + LEASE_REUSE_SECONDS
                self._lease = (self._client.grant_lease(ttl), now)
            return self._lease[0]

    def _usage_key(self, namespace: str) -> bytes:
        return self._prefix + b"usage/" + quote(namespace, safe="").encode()

    def _request_key(self, uid: str) -> bytes:
        return self._prefix + b"requests/" + quote(uid, safe="").encode()


def _decide(
    seen: Snapshot, charges: list[Charge], fresh: bool
) -> tuple[dict[str, Used], list[tuple[Charge, Outcome]], list[Charge]] | None:
    """Each charge in order, on the usage the ones before it left: (new usage rows, every charge's
    outcome, the charges to write), or None when `seen` is a memory and some charge would be refused.
    A charge whose `change` raises gets the exception and is left out."""
    rows = dict(seen.rows)
    outcomes: list[tuple[Charge, Outcome]] = []
    accepted: dict[str, Charge] = {}  # uid -> charge
    for charge in charges:
        request = charge.request
        if request.uid in seen.fingerprints:
            outcomes.append((charge, replay(request, seen.fingerprints[request.uid])))
            continue
        if request.uid in accepted:  # the same uid twice in one batch: a retry racing its original
            outcomes.append((charge, replay(request, accepted[request.uid].request.fingerprint)))
            continue
        try:
            after = charge.change(current(rows, charge.seeds))
        except Exception as exc:
            charge.error = exc
            continue
        if isinstance(after, Refused):
            if not fresh:
                return None
            outcomes.append((charge, Outcome(Applied.REFUSED, after.message)))
            continue
        rows.update(after)
        accepted[request.uid] = charge
        outcomes.append((charge, Outcome(Applied.CHANGED)))
    return rows, outcomes, list(accepted.values())


def _snapshot(responses: list[dict[str, object]], namespace: str, charges: list[Charge]) -> Snapshot:
    """The usage key, then one request key per charge, as `_reads` asked for them."""
    usage_kvs = key_values(_range(responses[0]))
    usage = usage_kvs[0] if usage_kvs else None
    fingerprints = {}
    for charge, response in zip(charges, responses[1:], strict=True):
        for kv in key_values(_range(response)):
            fingerprints[charge.request.uid] = _fingerprint(kv)
    return Snapshot(_rows(usage, namespace), usage.mod_revision if usage else 0, fingerprints)


def _fingerprint(kv: KeyValue) -> str:
    remembered = decode_stored(kv.value, f"etcd key {kv.key.decode(errors='replace')} is not a JSON object")
    return str(remembered.get("fingerprint", ""))


def _remembered(charge: Charge, namespace: str) -> bytes:
    return orjson.dumps({"fingerprint": charge.request.fingerprint, "namespace": namespace})


def _kept_changing(namespace: str) -> StoreError:
    return StoreError(f"quota usage of namespace {namespace} kept changing: {MAX_ATTEMPTS} attempts failed")


def _range(response: dict[str, object]) -> dict[str, object]:
    found = response.get("response_range")
    if not isinstance(found, dict):
        raise StoreError(f"etcd answered a range with {response}")
    return found


def _rows(kv: KeyValue | None, namespace: str) -> dict[str, Used]:
    if kv is None:
        return {}
    return decode_stored(kv.value, f"quota usage of namespace {namespace} in etcd is not a JSON object")


def _json(rows: Mapping[str, Used]) -> bytes:
    return orjson.dumps(rows, option=orjson.OPT_SORT_KEYS)
