"""An HTTPS load generator for the webhook benchmarks: keep-alive connections, client certificate.

    python -m tests.bench.loadgen --url https://127.0.0.1:8443/authorize --bodies reviews.jsonl \\
        --ca certs/ca.crt --cert certs/kube-apiserver.crt --key certs/kube-apiserver.key \\
        --connections 64 --duration 10 [--rate 2000] [--processes 1] [--header 'Name: value' ...]

Closed loop (no --rate): every connection sends its next request as soon as the answer arrives,
which measures throughput at saturation. Open loop (--rate R): requests are due at fixed
intervals of 1/R whether or not the server keeps up; a due request waits for a free connection,
and its latency runs from the time it was due, not from when it was sent, so a server that
stalls is charged for every request it delayed (no coordinated omission).

wrk cannot present a client certificate, hence this tool. It speaks just enough HTTP/1.1 (one
request in flight per connection, Content-Length bodies) over asyncio protocols on uvloop,
because every cycle the client spends is a cycle the server on the same two cores does not get.
The result is one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

UID_TOKEN = b"__UID__"  # replaced in each body by a unique id (admission charges once per uid)


@dataclass
class Target:
    host: str
    port: int
    path: str
    bodies: list[bytes]
    ca: str
    cert: str | None
    key: str | None
    headers: tuple[str, ...] = ()  # extra request header lines, "Name: value"

    def tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        if self.cert and self.key:
            context.load_cert_chain(self.cert, self.key)
        return context


@dataclass
class Tally:
    latencies_us: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        status = _complete_response(self.buffer)
        if status is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))
        if not self.closed.done():
            self.closed.set_result(None)

    async def request(self, raw: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


def _complete_response(buffer: bytearray) -> int | None:
    """The status of the response in `buffer` once it is whole (then removed from the buffer)."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).lower()
    length = 0
    start = head.find(b"\r\ncontent-length:")
    if start >= 0:
        stop = head.find(b"\r\n", start + 2)
        length = int(head[start + 17 : stop if stop >= 0 else None])
    end = head_end + 4 + length
    if len(buffer) < end:
        return None
    status = int(head[9:12])
    del buffer[:end]
    return status


def _request_bytes(target: Target, body: bytes) -> bytes:
    head = (
        f"POST {target.path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        + "".join(f"{line}\r\n" for line in target.headers) + "\r\n"
    )
    return head.encode() + body


class Requests:
    """The bodies in turn; a body with __UID__ gets a fresh uid each time."""

    def __init__(self, target: Target, prefix: str) -> None:
        self.fixed = [_request_bytes(target, b) if UID_TOKEN not in b else None for b in target.bodies]
        self.target = target
        self.prefix = prefix
        self.count = 0

    def next(self) -> bytes:
        i = self.count
        self.count += 1
        index = i % len(self.fixed)
        raw = self.fixed[index]
        if raw is not None:
            return raw
        uid = f"{self.prefix}-{i}".encode()
        return _request_bytes(self.target, self.target.bodies[index].replace(UID_TOKEN, uid))


async def _connect(target: Target, context: ssl.SSLContext) -> Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(Connection, target.host, target.port, ssl=context)
    return protocol


async def _send(conn: Connection, raw: bytes, tally: Tally) -> bool:
    try:
        status = await conn.request(raw)
    except (ConnectionError, OSError):
        tally.errors += 1
        return False
    tally.statuses[status] = tally.statuses.get(status, 0) + 1
    return True


async def closed_loop(target: Target, connections: int, duration: float, prefix: str) -> Tally:
    context, tally, requests = target.tls(), Tally(), Requests(target, prefix)
    conns = await asyncio.gather(*(_connect(target, context) for _ in range(connections)))
    deadline = time.perf_counter() + duration
    clock = time.perf_counter_ns

    async def drive(conn: Connection) -> None:
        while time.perf_counter() < deadline:
            start = clock()
            if not await _send(conn, requests.next(), tally):
                return
            tally.latencies_us.append((clock() - start) // 1000)

    await asyncio.gather(*(drive(c) for c in conns))
    _close(conns)
    return tally


async def open_loop(target: Target, connections: int, duration: float, rate: float, prefix: str) -> Tally:
    context, tally, requests = target.tls(), Tally(), Requests(target, prefix)
    conns = await asyncio.gather(*(_connect(target, context) for _ in range(connections)))
    due: asyncio.Queue[int | None] = asyncio.Queue()
    clock = time.perf_counter_ns

    async def drive(conn: Connection) -> None:
        while (intended := await due.get()) is not None:
            wait = intended - clock()
            if wait > 0:
                await asyncio.sleep(wait / 1e9)
            if not await _send(conn, requests.next(), tally):
                return
            tally.latencies_us.append((clock() - intended) // 1000)

    workers = [asyncio.create_task(drive(c)) for c in conns]
    start, interval, total = clock(), 1e9 / rate, int(rate * duration)
    for i in range(total):
        intended = start + int(i * interval)
        ahead = intended - clock()
        if ahead > 2_000_000:  # hand requests out up to 2 ms before they are due
            await asyncio.sleep((ahead - 1_000_000) / 1e9)
        due.put_nowait(intended)
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    _close(conns)
    return tally


def _close(conns: Sequence[Connection]) -> None:
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()


def _run_one(target: Target, connections: int, duration: float, rate: float | None, prefix: str) -> Tally:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    if rate:
        return asyncio.run(open_loop(target, connections, duration, rate, prefix))
    return asyncio.run(closed_loop(target, connections, duration, prefix))


def _child(args: tuple[Target, int, float, float | None, str]) -> Tally:
    return _run_one(*args)


def run(
    target: Target, connections: int, duration: float, rate: float | None = None, processes: int = 1
) -> dict[str, Any]:
    """Run the load and summarise it: requests, errors, statuses, req/s, latency percentiles (ms)."""
    tag = f"{os.getpid()}-{time.time_ns()}"
    started = time.perf_counter()
    if processes == 1:
        tallies = [_run_one(target, connections, duration, rate, tag)]
    else:
        per_rate = rate / processes if rate else None
        share = max(1, connections // processes)
        jobs = [(target, share, duration, per_rate, f"{tag}-{i}") for i in range(processes)]
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            tallies = pool.map(_child, jobs)
    elapsed = time.perf_counter() - started
    return summarise(tallies, duration, elapsed)


def summarise(tallies: Sequence[Tally], duration: float, elapsed: float) -> dict[str, Any]:
    latencies = sorted(x for t in tallies for x in t.latencies_us)
    statuses: dict[str, int] = {}
    for t in tallies:
        for code, n in t.statuses.items():
            statuses[str(code)] = statuses.get(str(code), 0) + n

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] / 1000 if latencies else 0.0

    return {
        "requests": len(latencies),
        "errors": sum(t.errors for t in tallies),
        "statuses": statuses,
        "rps": len(latencies) / duration,
        "elapsed": elapsed,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] / 1000 if latencies else 0.0,
    }


def read_bodies(path: Path) -> list[bytes]:
    """One request body per line (JSON lines)."""
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", type=Path, required=True, help="JSON lines: one request body per line")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="open loop: requests per second in total")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--header", action="append", default=[], help="extra header line, 'Name: value'")
    args = parser.parse_args(argv)
    url = urlsplit(args.url)
    target = Target(
        url.hostname or "127.0.0.1", url.port or 443, url.path or "/", read_bodies(args.bodies),
        args.ca, args.cert, args.key, tuple(args.header),
    )
    json.dump(run(target, args.connections, args.duration, args.rate, args.processes), sys.stdout)
    print()


if __name__ == "__main__":
    main()
