"""The password hash pool: its own threads, and a cap counting the checks queued or running."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from gatekeeper.authn.hashing import HashingBusy, HashPool
from tests.support.waiting import wait_for


@pytest.fixture
def pool() -> Iterator[HashPool]:
    running = HashPool(limit=2)
    yield running
    running.shutdown()


def blocked(release: threading.Event, calls: list[str], name: str) -> str:
    calls.append(name)
    assert release.wait(10)
    return name


def test_beyond_the_cap_is_refused_at_once_and_never_run(pool: HashPool) -> None:
    release, calls = threading.Event(), list[str]()

    async def scenario() -> list[str]:
        first = asyncio.ensure_future(pool.run(blocked, release, calls, "a"))
        second = asyncio.ensure_future(pool.run(blocked, release, calls, "b"))
        await asyncio.sleep(0)
        assert pool.in_flight == 2
        with pytest.raises(HashingBusy):
            await pool.run(blocked, release, calls, "c")
        release.set()
        return list(await asyncio.gather(first, second))

    assert asyncio.run(scenario()) == ["a", "b"]
    assert sorted(calls) == ["a", "b"]  # "c" was never hashed
    assert pool.in_flight == 0


def test_a_slot_comes_back_after_an_error(pool: HashPool) -> None:
    def fails() -> None:
        raise ValueError("bad hash")

    async def scenario() -> None:
        for _ in range(5):
            with pytest.raises(ValueError):
                await pool.run(fails)

    asyncio.run(scenario())
    assert pool.in_flight == 0


def test_a_caller_that_gives_up_does_not_free_the_slot_before_the_check_ends(pool: HashPool) -> None:
    release, calls = threading.Event(), list[str]()

    async def scenario() -> None:
        waiter = asyncio.ensure_future(pool.run(blocked, release, calls, "a"))
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert pool.in_flight == 1  # the thread is still hashing: the cap counts work
        release.set()

    asyncio.run(scenario())
    wait_for(lambda: pool.in_flight == 0, timeout=10)


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HashPool(limit=0)
