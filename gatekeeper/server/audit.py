"""The audit log: one JSON line per decision, written off the event loop, rotated by size.

A request only serializes its entry and puts the bytes on a queue; one writer thread appends
them to the file through logging's RotatingFileHandler (kube-apiserver's --audit-log-maxsize in
megabytes, --audit-log-maxbackup files kept). Entries are built by server/observe.py from
attributes only: no token, password, object body or `extra` value ever reaches this module.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import threading
from pathlib import Path
from typing import Any

import orjson

MEGABYTE = 1024 * 1024
_STOP = b""


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return str(record.msg)


class AuditLog:
    def __init__(self, path: Path, max_bytes: int, max_backups: int) -> None:
        """max_bytes 0: never rotate."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=max_backups, encoding="utf-8"
        )
        self._handler.setFormatter(_LineFormatter())
        self._queue: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="audit-log", daemon=True)
        self._thread.start()

    def write(self, entry: dict[str, Any]) -> None:
        """Queue one entry; cheap enough for the event loop."""
        self._queue.put(orjson.dumps(entry))

    def close(self) -> None:
        """Write everything queued, then close the file."""
        self._queue.put(_STOP)
        self._thread.join(timeout=10)
        self._handler.close()

    def _drain(self) -> None:
        while True:
            line = self._queue.get()
            if line == _STOP:
                return
            record = logging.makeLogRecord({"msg": line.decode("utf-8")})
            self._handler.emit(record)


def open_audit_log(path: Path | None, max_megabytes: int, max_backups: int, workers: int) -> AuditLog | None:
    """The audit log of this process; with several workers each writes PATH.<pid> (no shared rotation)."""
    if path is None:
        return None
    if workers > 1:
        path = path.with_name(f"{path.name}.{os.getpid()}")
    return AuditLog(path, max_megabytes * MEGABYTE, max_backups)
