"""Files that are reloaded on change: each Watched holds the last good value built from them.

A change is noticed by polling the files' stat (following symlinks, so a Kubernetes ConfigMap's
`..data` swap counts) and on SIGHUP. A poll loads a change only once the files have stopped
changing: the same (device, inode, mtime, size) for the settle time (`--reload-settle`), seen
across polls, so a writer that pauses mid-write is not read half done; SIGHUP loads at once. A
load that fails leaves the last good value in force and records the error, which /readyz shows.
Readers only ever see a whole value: the swap is one attribute assignment.

Two options serve the state manifests: `paths` may be a function, called again on every reload
(a file added to a watched folder is itself watched from then on), and `Retry` names load
failures that are not the files' fault (the store unreachable): such a load is tried again on
every poll, unchanged files or not, and at start-up it leaves a stand-in value instead of failing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from gatekeeper.admission.state import StoreError

T = TypeVar("T")
log = logging.getLogger("gatekeeper.reload")

Stamp = tuple[tuple[int, int, int, int], ...]
SETTLE_SECONDS = 1.0  # --reload-settle's default
# An in-place write truncates first: the empty file is valid (a policy with no rules) and a
# writer descheduled before its write() leaves it empty for as long as it likes. An empty file
# must stay empty at least this long before it counts, whatever the settle time.
EMPTY_SETTLE_SECONDS = 2.0


def stamp_of(paths: Sequence[Path]) -> Stamp:
    stamps = []
    for path in paths:
        try:
            st = os.stat(path)
            stamps.append((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append((0, 0, 0, -1))
    return tuple(stamps)


def shown_error(exc: Exception) -> str:
    """What /readyz and the log say about a failed load. The loaders' own errors (ValueError,
    OSError, StoreError) name file, line and field and never quote the file; any other
    exception's text might (a parser's snippet), so only its type and where it was raised show."""
    if isinstance(exc, ValueError | OSError | StoreError):
        return str(exc)
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    return f"unexpected {type(exc).__name__}{where} while loading"


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    name: str
    loaded_at: float
    reloads: int
    failures: int
    error: str | None


@dataclass(frozen=True, slots=True)
class Retry(Generic[T]):
    """Load failures of these types are retried on every poll; at start-up `stand_in` is the value."""

    errors: tuple[type[Exception], ...]
    stand_in: T


Paths = Sequence[Path] | Callable[[], Sequence[Path]]


class Watched(Generic[T]):
    """A value built from files by `load`; reload() swaps it only when `load` succeeds."""

    def __init__(
        self,
        name: str,
        paths: Paths,
        load: Callable[[], T],
        retry: Retry[T] | None = None,
        release: Callable[[list[T]], None] | None = None,
    ) -> None:
        self.name = name
        self._list_paths = paths if callable(paths) else None
        self.paths = tuple(paths() if callable(paths) else paths)
        self._load = load
        self._retry = retry
        self._retrying = False
        self._release = release  # frees a replaced value, given its only reference in a list
        self._stamp = stamp_of(self.paths)
        self._pending: tuple[Stamp, float] | None = None  # a change seen, and since when unchanged
        self.loaded_at = time.time()
        self.reloads = 0
        self.failures = 0
        self.error: str | None = None
        self.current: T = self._first_load()

    def _first_load(self) -> T:
        """Start-up: a failure here is fatal, and the caller says so, unless it is one to retry."""
        try:
            return self._load()
        except Exception as exc:
            if self._retry is None or not isinstance(exc, self._retry.errors):
                raise
            self._failed(exc)
            return self._retry.stand_in

    def changed(self) -> bool:
        return self._retrying or stamp_of(self.paths) != self._stamp

    def check(self, settle: float = SETTLE_SECONDS) -> bool:
        """Reload if the files changed and have not changed again for `settle` seconds."""
        if not self.changed():
            self._pending = None
            return False
        stamp, now = stamp_of(self.paths), time.monotonic()
        if stamp == self._stamp:
            return self.reload()  # nothing written: a load to retry (Retry)
        if self._pending is None or self._pending[0] != stamp:
            self._pending = (stamp, now)  # still being written, or first seen now
            return False
        empty = any(size == 0 for *_, size in stamp)
        if now - self._pending[1] < (max(settle, EMPTY_SETTLE_SECONDS) if empty else settle):
            return False
        return self.reload()

    def reload(self) -> bool:
        if self._list_paths is not None:
            with contextlib.suppress(Exception):  # a vanished path: the load below reports it
                self.paths = tuple(self._list_paths())
        stamp = stamp_of(self.paths)
        try:
            value = self._load()
        except Exception as exc:  # any load failure keeps the last good value
            self._stamp, self._pending = stamp, None
            self._failed(exc)
            log.error("reload of %s refused, keeping the last good version: %s", self.name, self.error)
            return False
        self._stamp, self._pending, self._retrying = stamp, None, False
        replaced, self.current = [self.current], value
        self.loaded_at = time.time()
        self.reloads += 1
        self.error = None
        log.info("reloaded %s", self.name)
        if self._release is not None:
            self._release(replaced)
        return True

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.error = shown_error(exc)
        self._retrying = self._retry is not None and isinstance(exc, self._retry.errors)

    def status(self) -> ReloadStatus:
        return ReloadStatus(self.name, self.loaded_at, self.reloads, self.failures, self.error)
