"""etcd store: several gatekeeper replicas share the cluster objects and quota usage.

Keys under the prefix (`--etcd-prefix`, default `/gatekeeper/`), each path part percent-encoded:
  objects/<resource>/<namespace>/<name>   the object as JSON ("" namespace for cluster-scoped ones)
  manifests                               JSON {"resource/namespace/name": digest} (backends/manifests.py)
  quota/...                               the quota ledger (gatekeeper/backends/etcd/ledger.py)

Reads come from a watched copy of objects/ (watch.py), or from etcd itself while that
copy is not current. A write returns once this process's copy includes it, so a replica reads its
own writes. etcd caps a transaction at 128 operations, so `replace_all` and `apply_manifests` write
in transactions of MAX_TXN_OPS: each object is written whole, and the manifests digest goes last, so
a load cut short is redone by the next one.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

import orjson

from gatekeeper.admission.state import JSONObject, Key, StoreError, key_of
from gatekeeper.backends.etcd.client import (
    MAX_TXN_OPS,
    EtcdClient,
    delete_op,
    put_op,
)
from gatekeeper.backends.etcd.ledger import EtcdLedger
from gatekeeper.backends.etcd.options import EtcdOptions
from gatekeeper.backends.etcd.watch import NotSynced, WatchedPrefix
from gatekeeper.backends.snapshot import Snapshot
from gatekeeper.backends.storable import decode_stored, storable

OWN_WRITE_WAIT = 1.0  # seconds a write waits to see itself in this process's copy


class EtcdStore:
    def __init__(self, options: EtcdOptions) -> None:
        self.options = options
        self._client = EtcdClient(options)
        prefix = (options.prefix if options.prefix.endswith("/") else options.prefix + "/").encode()
        self._objects_prefix = prefix + b"objects/"
        self._manifests_key = prefix + b"manifests"
        self.quota_ledger = EtcdLedger(self._client, prefix.decode() + "quota/")
        self._copy = WatchedPrefix(self._client, self._objects_prefix)

    blocks = True  # a read the watched copy cannot answer, and every write, is a round trip

    def unavailable(self) -> str | None:
        """Why this store cannot answer now (etcd unreachable), or None."""
        return self._copy.problem()

    def snapshot(self) -> Snapshot[bytes]:
        """A request's reads, each from the watched copy (or etcd) once (backends/snapshot.py)."""
        return Snapshot(self, self, _decode)

    def get(self, resource: str, namespace: str, name: str) -> JSONObject | None:
        value = self.get_stored(resource, namespace, name)
        return _decode(value) if value is not None else None

    def list(self, resource: str, namespace: str) -> builtins.list[JSONObject]:
        return [_decode(value) for value in self.list_stored(resource, namespace)]

    def get_stored(self, resource: str, namespace: str, name: str) -> bytes | None:
        path = _path((resource, namespace, name))
        try:
            return self._copy.get(path)
        except NotSynced:
            kv = self._client.get(self._objects_prefix + path)
            return kv.value if kv else None

    def list_stored(self, resource: str, namespace: str) -> builtins.list[bytes]:
        parent = _part(resource) + b"/" + _part(namespace)
        try:
            return self._copy.children(parent)
        except NotSynced:
            kvs, _ = self._client.range_prefix(self._objects_prefix + parent + b"/")
            return [kv.value for kv in kvs]  # etcd returns keys in order, so by name

    def all(self) -> builtins.list[JSONObject]:
        objects = [(_key(path), _decode(value)) for path, value in self._items()]
        return [obj for _, obj in sorted(objects, key=lambda pair: pair[0])]

    def put(self, obj: JSONObject) -> None:
        key, value = self._encoded(obj)
        revision = self._client.put(key, value)
        self._copy.wait_for(revision, OWN_WRITE_WAIT)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        revision = self._client.delete(self._object_key((resource, namespace, name)))
        self._copy.wait_for(revision, OWN_WRITE_WAIT)

    def replace_all(self, objects: Iterable[JSONObject]) -> None:
        fresh = dict(self._encoded(obj) for obj in objects)  # validate first
        kvs, _ = self._client.range_prefix(self._objects_prefix)
        stale = [delete_op(kv.key) for kv in kvs if kv.key not in fresh]
        self._write([*stale, *(put_op(key, value) for key, value in fresh.items())])

    def applied_manifests(self) -> dict[Key, str]:
        kv = self._client.get(self._manifests_key)
        if kv is None:
            return {}
        stored = decode_stored(kv.value, f"etcd key {self._manifests_key.decode()} is not a JSON object")
        return {_key(path.encode()): str(digest) for path, digest in stored.items()}

    def apply_manifests(
        self, puts: Iterable[JSONObject], deletes: Iterable[Key], applied: Mapping[Key, str]
    ) -> None:
        ops = [put_op(*self._encoded(obj)) for obj in puts]
        ops = [*(delete_op(self._object_key(key)) for key in deletes), *ops]
        digests = {_path(key).decode(): digest for key, digest in applied.items()}
        ops.append(put_op(self._manifests_key, orjson.dumps(digests, option=orjson.OPT_SORT_KEYS)))
        self._write(ops)

    def close(self) -> None:
        self._copy.close()
        self.quota_ledger.close()
        self._client.close()

    def _items(self) -> builtins.list[tuple[bytes, bytes]]:
        try:
            return self._copy.items()
        except NotSynced:
            kvs, _ = self._client.range_prefix(self._objects_prefix)
            return [(kv.key[len(self._objects_prefix) :], kv.value) for kv in kvs]

    def _write(self, ops: builtins.list[dict[str, Any]]) -> None:
        revision = 0
        for start in range(0, len(ops), MAX_TXN_OPS):
            revision = self._client.txn([], ops[start : start + MAX_TXN_OPS]).revision
        self._copy.wait_for(revision, OWN_WRITE_WAIT)

    def _object_key(self, key: Key) -> bytes:
        return self._objects_prefix + _path(key)

    def _encoded(self, obj: JSONObject) -> tuple[bytes, bytes]:
        """The etcd key and value of an object as stored (a Secret without its data)."""
        stored = storable(obj)
        return self._object_key(key_of(stored)), orjson.dumps(stored)


def _part(text: str) -> bytes:
    return quote(text, safe="").encode()


def _path(key: Key) -> bytes:
    return b"/".join(_part(part) for part in key)


def _key(path: bytes) -> Key:
    parts = path.decode().split("/")
    if len(parts) != 3:
        raise StoreError(f"etcd key objects/{path.decode()} is not objects/<resource>/<namespace>/<name>")
    resource, namespace, name = (unquote(part) for part in parts)
    return resource, namespace, name


def _decode(value: bytes) -> JSONObject:
    return decode_stored(value, "an object stored in etcd is not a JSON object")


def parse_endpoints(text: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` -> ((host, port), ...); ValueError names what is wrong."""
    endpoints = []
    for item in (part.strip() for part in text.split(",")):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item!r} is not HOST:PORT")
        endpoints.append((host.strip("[]"), int(port)))
    return tuple(endpoints)
