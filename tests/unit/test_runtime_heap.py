"""The server's long-lived objects are hidden from the cyclic garbage collector (server/runtime.py).

A full collection walks every tracked object; with a large policy loaded that was ~50 ms with the
worker stopped, several times a minute under admission load. Frozen objects are not walked.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatekeeper.config import Settings
from gatekeeper.server.runtime import Runtime

RULE = (
    '{{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{{"user":"user-{i}","namespace":"ns-{i}","resource":"pods"}}}}\n'
)


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # later tests' garbage must stay collectable


def _frozen(obj: object) -> bool:
    """Tracked by the collector, but in none of its generations: the permanent one."""
    return gc.is_tracked(obj) and not any(o is obj for o in gc.get_objects())


def _runtime(tmp_path: Path, rules: int) -> tuple[Runtime, Path]:
    policy = tmp_path / "abac.jsonl"
    policy.write_text("".join(RULE.format(i=i) for i in range(rules)))
    settings = Settings(authorization_policy_file=policy, store="memory://")
    return Runtime(settings), policy


def test_policy_is_frozen_at_start_and_after_each_reload(tmp_path: Path, unfrozen: None) -> None:
    runtime, policy = _runtime(tmp_path, 200)

    async def serve_and_reload() -> None:
        async with runtime.lifespan(None):
            first = runtime.policy.current
            assert _frozen(first)
            policy.write_text("".join(RULE.format(i=i) for i in range(300)))
            runtime.reload_all()
            second = runtime.policy.current
            assert second is not first
            assert _frozen(second)

    asyncio.run(serve_and_reload())


def test_a_refused_reload_freezes_nothing_new(tmp_path: Path, unfrozen: None) -> None:
    runtime, policy = _runtime(tmp_path, 10)

    async def serve_and_fail() -> None:
        async with runtime.lifespan(None):
            policy.write_text("{not json\n")
            young = [object() for _ in range(100)]  # a tracked object made since the start
            runtime.reload_all()
            assert runtime.policy.error is not None
            assert not _frozen(young)

    asyncio.run(serve_and_fail())


def test_reloads_do_not_pile_up_frozen_policies(tmp_path: Path, unfrozen: None) -> None:
    """A frozen object is never collected as part of a cycle: a replaced policy must go by its
    reference count alone, or every reload would keep the old one forever."""
    runtime, policy = _runtime(tmp_path, 2000)

    async def reload_often() -> list[int]:
        counts = []
        async with runtime.lifespan(None):
            for generation in range(4):
                policy.write_text("".join(RULE.format(i=i + generation) for i in range(2000)))
                runtime.reload_all()
                counts.append(gc.get_freeze_count())
        return counts

    first, *later = asyncio.run(reload_often())
    assert all(count <= first + 1000 for count in later), (first, later)  # one policy: ~8,000 objects


class _Cycle:
    """Garbage only the cyclic collector can reclaim, like a closed connection's objects."""

    def __init__(self) -> None:
        self.me = self


def test_garbage_frozen_at_one_reload_is_collected_at_the_next(tmp_path: Path, unfrozen: None) -> None:
    runtime, policy = _runtime(tmp_path, 10)

    async def reload_twice() -> None:
        async with runtime.lifespan(None):
            alive_at_reload = _Cycle()  # e.g. a connection open while the first reload happens
            gone = weakref.ref(alive_at_reload)
            policy.write_text(RULE.format(i=1))
            runtime.reload_all()
            assert _frozen(alive_at_reload)
            del alive_at_reload
            gc.collect()
            assert gone() is not None  # frozen: a collection does not see it
            policy.write_text(RULE.format(i=2))
            runtime.reload_all()
            assert gone() is None

    asyncio.run(reload_twice())
