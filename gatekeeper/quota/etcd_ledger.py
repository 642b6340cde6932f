"""The quota ledger in etcd, shared by every gatekeeper replica: compare-and-swap per namespace.

Keys under the store prefix (`/gatekeeper/` by default):
  quota/usage/<namespace>   JSON {quota name: {resource: canonical quantity}}
  quota/requests/<uid>      JSON {"fingerprint": ..., "namespace": ...}, on a lease that expires it
                            after REMEMBER_REQUESTS_SECONDS (plus up to LEASE_REUSE_SECONDS)

`apply` takes the namespace's usage as last seen, asks `change`, and writes the new usage and the uid
in one transaction that only succeeds if the usage key's mod_revision is still the one seen and the
uid key still does not exist; otherwise the transaction's failure branch returns both keys as they
are now, and `apply` decides again. So two requests (in any replicas) never both take the last unit,
and a uid is charged once: a retry whose first delivery did commit finds its own uid and is
REPLAYED. "Last seen" is this process's own last write when it has one (so an uncontended charge is
one round trip); a refusal is only ever decided on a fresh read. Requests of one process for one
namespace take turns (a lock), so conflicts only come from other processes.
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
        # namespace -> its usage as this process last wrote it: the next charge tries its
        # compare-and-swap on it straight away, and reads only when another replica got there first
        self._known: dict[str, Snapshot] = {}

    def usage(self, namespace: str, seeds: Mapping[str, Used]) -> NamespaceUsage:
        kv = self._client.get(self._usage_key(namespace))
        return current(_rows(kv, namespace), seeds)

    def apply(
        self, namespace: str, request: RequestKey, seeds: Mapping[str, Used], change: Change
    ) -> Outcome:
        keys = (self._usage_key(namespace), self._request_key(request.uid))
        remembered = orjson.dumps({"fingerprint": request.fingerprint, "namespace": namespace})
        with self._stripe(namespace):
            seen = self._known.get(namespace)
            fresh = seen is None
            if seen is None:
                seen = self._read(namespace, keys)
            for _ in range(MAX_ATTEMPTS):
                if seen.fingerprint is not None:
                    return replay(request, seen.fingerprint)
                after = change(current(seen.rows, seeds))
                if isinstance(after, Refused) and fresh:
                    return Outcome(Applied.REFUSED, after.message)
                if isinstance(after, Refused):  # refuse only on what etcd holds now, never on a memory
                    seen, fresh = self._read(namespace, keys), True
                    continue
                written, seen = self._write(namespace, keys, seen, {**seen.rows, **after}, remembered)
                if written:
                    return Outcome(Applied.CHANGED)
                fresh = True
        raise _kept_changing(namespace)

    def _read(self, namespace: str, keys: tuple[bytes, bytes]) -> Snapshot:
        return _snapshot(self._client.txn([], [range_op(key) for key in keys]).responses, namespace)

    def _write(
        self, namespace: str, keys: tuple[bytes, bytes], seen: Snapshot,
        rows: dict[str, Used], remembered: bytes,
    ) -> tuple[bool, Snapshot]:
        """Compare-and-swap: (True, what was written), or (False, both keys as they are now)."""
        usage_key, request_key = keys
        compare = [mod_revision_is(usage_key, seen.usage_revision), absent(request_key)]
        try:
            writes = [put_op(usage_key, _json(rows)), put_op(request_key, remembered, self._lease_id())]
            result = self._client.txn(compare, writes, [range_op(key) for key in keys])
        except StoreError as exc:
            if "lease not found" not in str(exc):
                raise
            with self._lease_lock:  # etcd forgot the lease (restored from a backup, revoked by hand)
                self._lease = None
            return False, self._read(namespace, keys)
        if not result.succeeded:
            return False, _snapshot(result.responses, namespace)
        written = Snapshot(rows, result.revision, None)  # every write of a txn gets its revision
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
        with self._stripe(namespace):
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
