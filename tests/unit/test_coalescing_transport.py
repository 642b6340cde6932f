"""The server's transport wrapper: writes of one loop turn leave as one write, in order, before close."""

from __future__ import annotations

import asyncio
from typing import Any

from gatekeeper.server.protocol import CoalescingTransport


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return f"info:{name}"


def test_writes_of_one_turn_are_joined_and_sent_at_its_end() -> None:
    async def scenario() -> list[bytes]:
        inner = FakeTransport()
        transport = CoalescingTransport(inner)
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"{}")
        assert inner.writes == []  # not yet: the turn is not over
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        return inner.writes

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\n\r\n{}", b"next"]


def test_close_sends_what_is_pending_first_and_the_rest_is_the_transports() -> None:
    async def scenario() -> FakeTransport:
        inner = FakeTransport()
        transport = CoalescingTransport(inner)
        transport.write(b"bye")
        transport.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left and writes nothing
        assert transport.get_extra_info("peername") == "info:peername"
        assert transport.is_closing()
        return inner

    inner = asyncio.run(scenario())
    assert inner.writes == [b"bye"] and inner.closed
