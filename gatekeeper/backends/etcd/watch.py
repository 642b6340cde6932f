"""A local copy of every key under an etcd prefix, kept current by one watch in a daemon thread.

Why a watched copy rather than reads through to etcd: admission reads the namespace, its limit
ranges, quotas and service account on every request; from memory that costs nothing, and an etcd
watch delivers another replica's change within milliseconds, which is what "a namespace deleted
through one replica is refused by the others within one second" needs.

Sync protocol (the usual watch-then-list): open a watch from now on, read its creation revision H,
list the prefix *at* H, then apply the watch's events (all after H) in order. The copy is only
`synced` between that list and the end of the stream; while it is not, readers get NotSynced and
read through to etcd instead, so a reader never sees an old copy as current. The stream is also
reopened after READ_TIMEOUT seconds of silence, so a member that vanished without closing the
connection is noticed.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import requests

from gatekeeper.admission.state import StoreError
from gatekeeper.backends.etcd.client import EtcdClient, prefix_end, revision_of

log = logging.getLogger("gatekeeper.backends.etcd.store")

READ_TIMEOUT = 10.0
MAX_BACKOFF = 1.0


class NotSynced(Exception):
    """The copy may be behind etcd right now; read from etcd itself."""


class WatchedPrefix:
    def __init__(self, client: EtcdClient, prefix: bytes) -> None:
        self._client = client
        self._prefix = prefix
        self._changed = threading.Condition()
        self._values: dict[bytes, bytes] = {}  # key without the prefix -> value
        self._children: dict[bytes, dict[bytes, bytes]] = {}  # parent path -> leaf -> value
        self._revision = 0
        self._synced = False
        self._error: str | None = f"not connected to etcd ({client.options.describe()}) yet"
        self._stopping = threading.Event()
        self._response: requests.Response | None = None  # the open watch stream, for close()
        self._thread = threading.Thread(target=self._run, name="etcd-watch", daemon=True)
        self._thread.start()

    def get(self, key: bytes) -> bytes | None:
        with self._changed:
            self._require_synced()
            return self._values.get(key)

    def children(self, parent: bytes) -> list[bytes]:
        """The values directly under `parent` (`parent/leaf`), ordered by leaf."""
        with self._changed:
            self._require_synced()
            leaves = self._children.get(parent, {})
            return [leaves[leaf] for leaf in sorted(leaves)]

    def items(self) -> list[tuple[bytes, bytes]]:
        with self._changed:
            self._require_synced()
            return sorted(self._values.items())

    def wait_for(self, revision: int, timeout: float) -> bool:
        """Wait until the copy includes `revision` (a write of this process), at most `timeout`."""
        with self._changed:
            return self._changed.wait_for(lambda: self._synced and self._revision >= revision, timeout)

    def problem(self) -> str | None:
        """Why the copy cannot be kept current (etcd unreachable), or None."""
        with self._changed:
            return None if self._synced else self._error

    def close(self) -> None:
        self._stopping.set()
        with self._changed:
            response = self._response
        if response is not None:
            _interrupt(response)
        self._thread.join(timeout=READ_TIMEOUT + 1)

    def _require_synced(self) -> None:
        if not self._synced:
            raise NotSynced()

    def _run(self) -> None:
        backoff = 0.05
        while not self._stopping.is_set():
            try:
                self._follow()
                backoff = 0.05
            except (StoreError, requests.RequestException, ValueError, KeyError) as exc:
                self._lost(str(exc))
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception as exc:  # the watcher must outlive anything etcd or the network does
                log.exception("etcd watch failed")
                self._lost(f"etcd watch failed: {exc}")
                self._stopping.wait(MAX_BACKOFF)

    def _follow(self) -> None:
        """One watch stream, from creation until it ends; returns on silence, raises on errors."""
        response = self._client.watch_stream(self._prefix, prefix_end(self._prefix), READ_TIMEOUT)
        with self._changed:
            self._response = response
        if self._stopping.is_set():
            response.close()
            return
        with contextlib.closing(response):
            messages = _messages(response)
            created = next(messages, None)
            if created is None or not created.get("created"):
                raise StoreError(f"etcd did not create the watch: {created}")
            self._load(revision_of(created))
            try:
                for message in messages:
                    if self._stopping.is_set():
                        return
                    if message.get("canceled") or message.get("compact_revision"):
                        raise StoreError(f"etcd cancelled the watch: {message.get('cancel_reason', '')}")
                    self._apply(message)
            except requests.RequestException:
                return  # silence past READ_TIMEOUT or a dropped connection: reopen (on another member)
            finally:
                with self._changed:
                    self._synced = False

    def _load(self, revision: int) -> None:
        kvs, _ = self._client.range_prefix(self._prefix, revision)
        with self._changed:
            self._values, self._children = {}, {}
            for kv in kvs:
                self._put(kv.key[len(self._prefix) :], kv.value)
            if self._error is not None and self._revision:
                log.info("etcd watch is back at revision %d", revision)
            self._revision, self._synced, self._error = revision, True, None
            self._changed.notify_all()

    def _apply(self, message: dict[str, Any]) -> None:
        with self._changed:
            for event in message.get("events", []):
                kv = event["kv"]
                key = base64.b64decode(kv["key"])[len(self._prefix) :]
                if event.get("type") == "DELETE":
                    self._delete(key)
                else:
                    self._put(key, base64.b64decode(kv.get("value", "")))
            self._revision = max(self._revision, revision_of(message))
            self._changed.notify_all()

    def _put(self, key: bytes, value: bytes) -> None:
        self._values[key] = value
        parent, _, leaf = key.rpartition(b"/")
        self._children.setdefault(parent, {})[leaf] = value

    def _delete(self, key: bytes) -> None:
        self._values.pop(key, None)
        parent, _, leaf = key.rpartition(b"/")
        leaves = self._children.get(parent)
        if leaves is not None:
            leaves.pop(leaf, None)
            if not leaves:
                del self._children[parent]

    def _lost(self, error: str) -> None:
        with self._changed:
            first = self._error is None
            self._synced, self._error = False, error
        if first and not self._stopping.is_set():  # once per outage, not once per retry
            log.warning("lost etcd, reads go to etcd until the watch is back: %s", error)


def _interrupt(response: requests.Response) -> None:
    """Wake the thread blocked reading the stream: shut its socket down (closing it would not)."""
    connection: Any = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _messages(response: requests.Response) -> Iterator[dict[str, Any]]:
    """The gateway's watch stream: one JSON object `{"result": {...}}` per line."""
    buffer = b""
    for chunk in response.iter_content(chunk_size=None):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                message = orjson.loads(line)
                if "error" in message:
                    raise StoreError(f"etcd watch error: {message['error'].get('message', message)}")
                yield message["result"]
