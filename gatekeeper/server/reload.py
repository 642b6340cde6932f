"""Files that are reloaded on change: each Watched holds the last good value built from them.

A change is noticed by polling the files' stat (following symlinks, so a Kubernetes ConfigMap's
`..data` swap counts) and on SIGHUP. A load that fails leaves the last good value in force and
records the error, which /readyz shows. Readers only ever see a whole value: the swap is one
attribute assignment.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("gatekeeper.reload")

Stamp = tuple[tuple[int, int, int, int], ...]
SETTLE_SECONDS = 0.05
# An in-place write truncates first: the empty file is valid (a policy with no rules) and a
# writer descheduled before its write() leaves it empty for as long as it likes. An empty file
# must stay empty this long before it counts; a SIGHUP still loads it at once.
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


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    name: str
    loaded_at: float
    reloads: int
    failures: int
    error: str | None


class Watched(Generic[T]):
    """A value built from files by `load`; reload() swaps it only when `load` succeeds."""

    def __init__(self, name: str, paths: Sequence[Path], load: Callable[[], T]) -> None:
        self.name = name
        self.paths = tuple(paths)
        self._load = load
        self._stamp = stamp_of(self.paths)
        self.current: T = load()  # start-up: a failure here is fatal, and the caller says so
        self.loaded_at = time.time()
        self.reloads = 0
        self.failures = 0
        self.error: str | None = None

    def changed(self) -> bool:
        return stamp_of(self.paths) != self._stamp

    def check(self) -> bool:
        """Reload if the files changed and have settled (an in-place write may be half done)."""
        if not self.changed():
            return False
        first = stamp_of(self.paths)
        empty = any(size == 0 for *_, size in first)
        time.sleep(EMPTY_SETTLE_SECONDS if empty else SETTLE_SECONDS)
        if stamp_of(self.paths) != first:
            return False  # still being written; the next poll sees it again
        return self.reload()

    def reload(self) -> bool:
        stamp = stamp_of(self.paths)
        try:
            value = self._load()
        except Exception as exc:  # any load failure keeps the last good value
            self._stamp = stamp
            self.failures += 1
            self.error = str(exc)
            log.error("reload of %s refused, keeping the last good version: %s", self.name, exc)
            return False
        self._stamp = stamp
        self.current = value
        self.loaded_at = time.time()
        self.reloads += 1
        self.error = None
        log.info("reloaded %s", self.name)
        return True

    def status(self) -> ReloadStatus:
        return ReloadStatus(self.name, self.loaded_at, self.reloads, self.failures, self.error)
