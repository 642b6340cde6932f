"""Open a store from a --store URL: memory:// or sqlite:///relative/path, sqlite:////abs/path."""

from __future__ import annotations

from pathlib import Path

from gatekeeper.store.base import Store
from gatekeeper.store.memory import MemoryStore

EXPECTED = "expected memory:// or sqlite:///PATH (sqlite:////abs/path for an absolute path)"


class StoreURLError(ValueError):
    """A --store value that names no store this build can open."""


def open_store(url: str) -> Store:
    if url in ("memory://", "memory:"):
        return MemoryStore()
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if not path or path.endswith("/"):
            raise StoreURLError(f"--store {url!r}: a file path is missing; {EXPECTED}")
        from gatekeeper.store.sqlite import SQLiteStore

        return SQLiteStore(Path(path))
    raise StoreURLError(f"--store {url!r}: {EXPECTED}")
