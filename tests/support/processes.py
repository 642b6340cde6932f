"""Find and kill -9 a server's whole process tree (uvicorn's master and its workers)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's worker processes), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = children.read_text().split() if children.exists() else []
    return [pid, *(p for child in found for p in process_tree(int(child)))]


def kill_9(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
