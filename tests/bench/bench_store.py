"""Admissions per second and latency of pod creates with each store, in one run:
SQLite (one file), etcd with 1 member, etcd with 3 members (all on loopback).

    python -m tests.bench.bench_store                                  # 2,000 creates, 16 clients
    python -m tests.bench.bench_store --requests 5000 --concurrency 32
    python -m tests.bench.bench_store --workers 2 --sides sqlite       # charges contend for the lock

Each side is a real `gatekeeper serve` (1 worker unless --workers, the default plugins, a namespace with a
ServiceAccount and a ResourceQuota large enough that every create is admitted and charged), fed
POST /admit AdmissionReviews over HTTPS by `concurrency` client threads, each on one kept-alive
connection. Every create is a quota charge: a SQLite write transaction, or an etcd compare-and-swap
transaction (a Raft round and an fsync). The clients run on the same machine and share its cores.
`lock wait` is how long the measured charges waited for their turn to write to the ledger
(gatekeeper_quota_lock_wait_seconds, from /metrics): the mean, and the bucket bound that 99 % of
them fell within. No assertion on time: the numbers are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.etcd import running_cluster
from tests.support.quota_reviews import CALLER, pod_review, state
from tests.support.server import Server, running_server

SERVICE_ACCOUNT = "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: team-a}\n"
WARM_UP = 20
SIDES = ("sqlite", "etcd, 1 member", "etcd, 3 members")


@contextlib.contextmanager
def store_url(side: str, workdir: Path) -> Iterator[str]:
    if side == "sqlite":
        yield "sqlite:///gatekeeper.db"
        return
    with running_cluster(workdir / "etcd", size=1 if "1 member" in side else 3) as cluster:
        yield cluster.url


def serve_args(workdir: Path, store: str, workers: int = 1) -> list[str]:
    (workdir / "abac.jsonl").write_text(CALLER)
    (workdir / "state.yaml").write_text(state({"pods": "1000000"}) + SERVICE_ACCOUNT)
    return ["--authorization-policy-file", "abac.jsonl", "--state", "state.yaml", "--store", store,
            "--workers", str(workers), "--log-level", "warning"]


def drive(server: Server, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """Wall seconds for `requests` creates from `concurrency` clients, and each one's latency."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client_thread(count: int) -> None:
        mine = []
        with server.client() as client:
            client.get("/healthz")
            for i in range(count):
                review = pod_review(str(uuid.uuid4()), f"p-{uuid.uuid4().hex[:8]}-{i}")
                started = time.perf_counter()
                response = client.post("/admit", json=review)
                mine.append(time.perf_counter() - started)
                body = response.json()["response"]
                assert response.status_code == 200 and body["allowed"], response.text
        with lock:
            latencies.extend(mine)

    shares = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(client_thread, shares))
    return time.perf_counter() - started, latencies


def lock_waits(server: Server) -> tuple[float, int, list[tuple[float, int]]]:
    """gatekeeper_quota_lock_wait_seconds from /metrics: sum, count, and (le, cumulative count)."""
    with server.client() as client:
        text = client.get("/metrics").text
    total, count, buckets = 0.0, 0, []
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == "gatekeeper_quota_lock_wait_seconds_sum":
            total = float(value)
        elif name == "gatekeeper_quota_lock_wait_seconds_count":
            count = int(float(value))
        elif name.startswith('gatekeeper_quota_lock_wait_seconds_bucket{le="'):
            bound = name.split('"')[1]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), int(float(value))))
    return total, count, buckets


def lock_wait_columns(before: tuple[float, int, list[tuple[float, int]]],
                      after: tuple[float, int, list[tuple[float, int]]]) -> str:
    count = after[1] - before[1]
    if not count:
        return f"{'-':>10} {'-':>10}"
    earlier = dict(before[2])
    p99 = next(le for le, n in after[2] if n - earlier.get(le, 0) >= 0.99 * count)
    return f"{(after[0] - before[0]) / count * 1e6:>10.0f} {p99 * 1000:>10.2f}"


def measure(side: str, requests: int, concurrency: int, workers: int = 1) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        workdir = Path(tmp)
        with store_url(side, workdir) as url, \
                running_server(workdir, serve_args(workdir, url, workers)) as server:
            drive(server, WARM_UP, min(concurrency, WARM_UP))
            before = lock_waits(server)
            wall, latencies = drive(server, requests, concurrency)
            waits = lock_wait_columns(before, lock_waits(server))
    cuts = statistics.quantiles(latencies, n=100)
    return (f"{side:<16} {requests:>8} {concurrency:>6} {requests / wall:>12.0f} "
            f"{cuts[49] * 1000:>8.1f} {cuts[98] * 1000:>8.1f} {waits}")


def run(requests: int, concurrency: int, sides: Sequence[str] = SIDES, workers: int = 1) -> list[str]:
    rows = [f"{'store':<16} {'requests':>8} {'conc':>6} {'admissions/s':>12} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'lock µs':>10} {'lock p99≤ms':>10}"]
    for side in sides:
        if side != "sqlite" and shutil.which("etcd") is None:
            rows.append(f"{side:<16} skipped: etcd not installed (apt-get install etcd-server)")
            continue
        rows.append(measure(side, requests, concurrency, workers))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="gatekeeper's --workers")
    parser.add_argument("--sides", nargs="*", choices=SIDES, default=list(SIDES))
    args = parser.parse_args(argv)
    for row in run(args.requests, args.concurrency, args.sides, args.workers):
        print(row, flush=True)


if __name__ == "__main__":
    main()
