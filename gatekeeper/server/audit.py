"""The audit log: one JSON line per decision, written off the event loop, rotated by size.

A request only serializes its entry and puts the bytes on a queue. One writer thread wakes at
most every BATCH_SECONDS, takes whatever has queued up, and appends it with one write. Entries
are built by server/observe.py from attributes only: no token, password, object body or `extra`
value ever reaches this module.

Every worker process of one server appends to the same file. They take turns through an flock
of PATH.lock: the holder first follows a rotation another worker made (PATH names a new file),
then appends, and rotates the file itself when the next line would pass the size limit
(kube-apiserver's --audit-log-maxsize in megabytes, 0 meaning 100): PATH becomes PATH.1, PATH.1
becomes PATH.2, and so on up to --audit-log-maxbackup files (0 keeps them all, as
kube-apiserver's does).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from gatekeeper.server.logs import json_line

log = logging.getLogger("gatekeeper.audit")

MEGABYTE = 1024 * 1024
# A writer woken by every entry takes the GIL from the event loop once per request, which cost
# /authorize about 80 us of CPU per request; batching bounds the hand-overs to 20 a second. An
# entry reaches the file at most this much later (kill -9 could always lose what was queued).
BATCH_SECONDS = 0.05
ROTATION_RETRY_SECONDS = 60  # after a failed rotation the file grows past the limit this long
DEFAULT_MAX_MEGABYTES = 100  # what kube-apiserver's log writer takes --audit-log-maxsize 0 to mean
_STOP = b""


class AuditLog:
    def __init__(self, path: Path, max_bytes: int, max_backups: int) -> None:
        """max_bytes 0: never rotate; max_backups 0: keep every rotated file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.max_backups = max_backups
        self._lock_path = f"{path}.lock"
        self._lock = _open_lock(self._lock_path)
        self._fd = _open_for_append(path)
        self._rotation_failed_at: float | None = None
        self._queue: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="audit-log", daemon=True)
        self._thread.start()

    def write(self, entry: dict[str, Any]) -> None:
        """Queue one entry; cheap enough for the event loop."""
        self._queue.put(json_line(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)))

    def close(self) -> None:
        """Write everything queued, then close the file."""
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _drain(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            if batch[0] != _STOP:
                time.sleep(BATCH_SECONDS)
            with contextlib.suppress(queue.Empty):
                while len(batch) < 10_000:
                    batch.append(self._queue.get_nowait())
            stopping = _STOP in batch
            lines = [line for line in batch if line != _STOP]
            try:
                self._append(lines)
            except Exception as exc:  # a full disk must not stop the server, nor this thread
                log.error("audit log %s: cannot write %d entries: %s", self.path, len(lines), exc)
        os.close(self._fd)
        os.close(self._lock)

    def _append(self, lines: list[bytes]) -> None:
        """All of `lines` is appended, or none of it (a failed write is cut back off the file)."""
        with self._turn():
            self._reopen_if_moved()
            size = os.fstat(self._fd).st_size
            chunk: list[bytes] = []
            for line in lines:
                if self.max_bytes and size and size + len(line) > self.max_bytes and self._rotation_due():
                    _write_whole(self._fd, b"".join(chunk))
                    chunk = []
                    size = self._rotate()
                chunk.append(line)
                size += len(line)
            _write_whole(self._fd, b"".join(chunk))

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """This process's turn at the file, among all the workers that write it. A lock file
        removed meanwhile (a cleanup of PATH*) is made again, so that all workers lock one file."""
        while True:
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            if _same_file(self._lock_path, self._lock):
                break
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            replacement = _open_lock(self._lock_path)  # raises before the old one is given up
            os.close(self._lock)
            self._lock = replacement
        try:
            yield
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def _reopen_if_moved(self) -> None:
        """Write to what PATH names now: another worker may have rotated it, or an admin moved or
        removed it."""
        if not _same_file(str(self.path), self._fd):
            replacement = _open_for_append(self.path)
            os.close(self._fd)
            self._fd = replacement

    def _rotation_due(self) -> bool:
        """False for a while after a rotation failed: the file grows past the limit instead, and
        entries keep being written."""
        failed = self._rotation_failed_at
        return failed is None or time.monotonic() - failed > ROTATION_RETRY_SECONDS

    def _rotate(self) -> int:
        """PATH moves to PATH.1 and each PATH.N to PATH.N+1, the oldest beyond max_backups
        overwritten. The size of the file written from now on."""
        try:
            kept = self.max_backups or self._backups() + 1
            for index in range(kept - 1, 0, -1):
                older = self._backup(index)
                if older.exists():
                    os.replace(older, self._backup(index + 1))
            with contextlib.suppress(FileNotFoundError):  # removed since this turn began: nothing to keep
                os.replace(self.path, self._backup(1))
            self._reopen_if_moved()
        except OSError as exc:
            self._rotation_failed_at = time.monotonic()
            log.error("audit log %s: cannot rotate, writing on past the size limit and trying again "
                      "in %d s: %s", self.path, ROTATION_RETRY_SECONDS, exc)
        else:
            self._rotation_failed_at = None
        return os.fstat(self._fd).st_size

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def _backups(self) -> int:
        """How many rotated files there are now: PATH.1 ... PATH.N without a gap."""
        count = 0
        while self._backup(count + 1).exists():
            count += 1
        return count


def _open_lock(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def _open_for_append(path: Path) -> int:
    """Append mode always (another worker's next write goes wherever the file ends); a new file is
    readable by its owner only, as kube-apiserver's audit files are: it names users and objects."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def _write_whole(fd: int, data: bytes) -> None:
    """Unbuffered, all of it or none of it: after a short or failed write (a full disk) the part
    that did land is cut off again, so no torn line is left for the next entry to run into."""
    if not data:
        return
    before = os.fstat(fd).st_size
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, before)
        raise


def _same_file(path: str, fd: int) -> bool:
    try:
        named, opened = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def open_audit_log(path: Path | None, max_megabytes: int, max_backups: int) -> AuditLog | None:
    """The audit log of this process; every worker of a server opens the same PATH."""
    if path is None:
        return None
    return AuditLog(path, (max_megabytes or DEFAULT_MAX_MEGABYTES) * MEGABYTE, max_backups)
