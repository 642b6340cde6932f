"""The quota ledger in etcd, shared by every gatekeeper replica: compare-and-swap per namespace.

Keys under the store prefix (`/gatekeeper/` by default):
  quota/usage/<namespace>   JSON {quota name: {resource: canonical quantity}}
  quota/requests/<uid>      JSON {"fingerprint": ..., "namespace": ...}, on a lease that expires it
                            after REMEMBER_REQUESTS_SECONDS (plus up to LEASE_REUSE_SECONDS)

`apply` reads both keys, asks `change`, and writes the new usage and the uid in one transaction that
only succeeds if the usage key's mod_revision is still the one read and the uid key still does not
exist; otherwise the transaction's failure branch returns both keys as they are now, and `apply`
decides again. So two requests (in any replicas) never both take the last unit, and a uid is charged
once: a retry whose first delivery did commit finds its own uid and is REPLAYED. Requests of one
process for one namespace take turns (a lock), so conflicts only come from other processes.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import orjson

from gatekeeper.quota.ledger import (
    REMEMBER_REQUESTS_SECONDS,
    Applied,
    Change,
    NamespaceUsage,
    Outcome,
    Refused,
    RequestKey,
    Used,
    current,
    replay,
)
from gatekeeper.store.base import StoreError
from gatekeeper.store.etcd_client import (
    EtcdClient,
    KeyValue,
    TxnResult,
    absent,
    key_values,
    mod_revision_is,
    put_op,
    range_op,
)

MAX_ATTEMPTS = 200
LEASE_REUSE_SECONDS = 3600
LOCK_STRIPES = 64


@dataclass(frozen=True, slots=True)
class Snapshot:
    rows: dict[str, Used]
    usage_revision: int  # 0: the namespace has no usage key yet
    fingerprint: str | None  # of the request uid, if it was applied before


class EtcdLedger:
    def __init__(self, client: EtcdClient, prefix: str) -> None:
        self._client = client
        self._prefix = prefix.encode()
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._lease_lock = threading.Lock()
        self._lease: tuple[int, float] | None = None  # (id, granted at)

    def usage(self, namespace: str, seeds: Mapping[str, Used]) -> NamespaceUsage:
        kv = self._client.get(self._usage_key(namespace))
        return current(_rows(kv, namespace), seeds)

    def apply(
        self, namespace: str, request: RequestKey, seeds: Mapping[str, Used], change: Change
    ) -> Outcome:
        usage_key, request_key = self._usage_key(namespace), self._request_key(request.uid)
        reads = [range_op(usage_key), range_op(request_key)]
        remembered = orjson.dumps({"fingerprint": request.fingerprint, "namespace": namespace})
        with self._stripe(namespace):
            result = self._client.txn([], reads)
            for _ in range(MAX_ATTEMPTS):
                seen = _snapshot(result.responses, namespace)
                if seen.fingerprint is not None:
                    return replay(request, seen.fingerprint)
                after = change(current(seen.rows, seeds))
                if isinstance(after, Refused):
                    return Outcome(Applied.REFUSED, after.message)
                compare = [mod_revision_is(usage_key, seen.usage_revision), absent(request_key)]
                new_usage = put_op(usage_key, _json({**seen.rows, **after}))
                writes = [new_usage, put_op(request_key, remembered, self._lease_id())]
                try:
                    result = self._client.txn(compare, writes, reads)  # on failure: both keys as they are now
                except StoreError as exc:
                    result = self._after_lost_lease(exc, reads)
                    continue
                if result.succeeded:
                    return Outcome(Applied.CHANGED)
        raise _kept_changing(namespace)

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
        with self._stripe(namespace):
            for _ in range(MAX_ATTEMPTS):
                kv = self._client.get(key)
                rows = {**_rows(kv, namespace), **replaced}
                revision = kv.mod_revision if kv else 0
                if self._client.txn([mod_revision_is(key, revision)], [put_op(key, _json(rows))]).succeeded:
                    return
        raise _kept_changing(namespace)

    def _after_lost_lease(self, exc: StoreError, reads: list[dict[str, object]]) -> TxnResult:
        """etcd forgot the lease (restored from a backup, revoked by hand): grant a new one, read again."""
        if "lease not found" not in str(exc):
            raise exc
        with self._lease_lock:
            self._lease = None
        return self._client.txn([], reads)

    def _lease_id(self) -> int:
        """One lease per process per hour for the request uids: a lease per charge would double the writes."""
        with self._lease_lock:
            now = time.monotonic()
            if self._lease is None or now - self._lease[1] > LEASE_REUSE_SECONDS:
                ttl = REMEMBER_REQUESTS_SECONDS + LEASE_REUSE_SECONDS
                self._lease = (self._client.grant_lease(ttl), now)
            return self._lease[0]

    def _stripe(self, namespace: str) -> threading.Lock:
        digest = hashlib.blake2b(namespace.encode(), digest_size=2).digest()
        return self._stripes[int.from_bytes(digest, "big") % LOCK_STRIPES]

    def _usage_key(self, namespace: str) -> bytes:
        return self._prefix + b"usage/" + quote(namespace, safe="").encode()

    def _request_key(self, uid: str) -> bytes:
        return self._prefix + b"requests/" + quote(uid, safe="").encode()


def _snapshot(responses: list[dict[str, object]], namespace: str) -> Snapshot:
    usage_kvs = key_values(_range(responses[0]))
    request_kvs = key_values(_range(responses[1]))
    usage = usage_kvs[0] if usage_kvs else None
    fingerprint = None
    if request_kvs:
        remembered = orjson.loads(request_kvs[0].value)
        fingerprint = str(remembered.get("fingerprint", ""))
    return Snapshot(_rows(usage, namespace), usage.mod_revision if usage else 0, fingerprint)


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
    try:
        rows = orjson.loads(kv.value)
    except orjson.JSONDecodeError:
        rows = None
    if not isinstance(rows, dict):
        raise StoreError(f"quota usage of namespace {namespace} in etcd is not a JSON object")
    return rows


def _json(rows: Mapping[str, Used]) -> bytes:
    return orjson.dumps(rows, option=orjson.OPT_SORT_KEYS)
