"""What a cluster pays for gatekeeper: kube-apiserver's own request latency, gatekeeper against the
in-tree ABAC authorizer and admission plugins, on the same control plane and the same policy file.

    python -m tests.bench.bench_cluster [--policy-lines 10000] [--rate 50] [--seconds 10]

One control plane (tests/e2e's: etcd, kube-apiserver, kube-controller-manager, built from the
pinned release). The caller is a token user granted by the *last* line of a policy of
--policy-lines lines (kube-apiserver's ABAC authorizer scans every line before it; gatekeeper's
index looks at the caller's own rules). For each wiring, at a fixed rate (open loop: latency runs
from when a request was due, so a stall is charged to every request it delays):

* get pod NAME, cycling through distinct names, so most authorization decisions miss the API
  server's webhook cache (an allow is cached for 2 s in this setup, as short as the e2e's);
* list pods in a namespace (one decision, cached);
* create a pod in a namespace with a LimitRange, the default ServiceAccount and a ResourceQuota
  (every create charged: gatekeeper on the ResourceQuota's status, in-tree the same way).

Wirings: `gatekeeper` (--authorization-config with gatekeeper as the webhook authorizer, token
authentication through its TokenReview webhook, its admission webhooks; the in-tree plugins off)
and `in-tree` (--authorization-mode=Node,ABAC,RBAC with the same file, --token-auth-file with the
same tokens, the in-tree NamespaceLifecycle, LimitRanger, ServiceAccount and ResourceQuota).
A table, never an assertion on time.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.e2e import scenarios
from tests.e2e.cluster import AUTHORIZATION_CONFIG, IN_TREE, TOKENS, Cluster, policy_text, running_cluster

BENCH_USER, BENCH_TOKEN = "bench", "e2e-token-bench-5f0c2d7a91"
NS = "bench"
WIRINGS = ("gatekeeper", "in-tree")


@dataclass(frozen=True)
class Result:
    wiring: str
    operation: str
    sent: int
    failed: int
    p50_ms: float
    p99_ms: float


def policy(lines: int) -> str:
    """`lines` ABAC lines: the e2e's own, other users' rules, and the caller's grant last."""
    own = policy_text()
    filler = max(0, lines - len(own.splitlines()) - 1)
    others = "".join(
        json.dumps({"user": f"user-{i}", "namespace": f"team-{i % 97}", "resource": "pods", "readonly": True})
        + "\n"
        for i in range(filler)
    )
    last = json.dumps({"user": BENCH_USER, "namespace": "*", "resource": "*", "apiGroup": "*"}) + "\n"
    return own + others + last


def prepare(cluster: Cluster, lines: int) -> None:
    gatekeeper = cluster.gatekeeper
    tokens = {**TOKENS, BENCH_USER: BENCH_TOKEN}
    (gatekeeper.workdir / "tokens.csv").write_text("".join(f"{t},{u},uid-{u}\n" for u, t in tokens.items()))
    staged = gatekeeper.policy.with_suffix(".staged")
    staged.write_text(policy(lines))
    os.replace(staged, gatekeeper.policy)
    time.sleep(1.0)  # gatekeeper's poller picks both files up (--reload-interval 0.2)


def setup_namespace(cluster: Cluster, ns: str) -> None:
    scenarios.namespace(cluster, ns)
    assert scenarios.create(cluster, scenarios.limit_range("limits", ns)).ok
    assert scenarios.create(
        cluster, scenarios.quota("compute", ns, {"pods": "100000", "limits.cpu": "100k"})
    ).ok
    scenarios.quota_synced(cluster, ns, "compute")


def client(cluster: Cluster) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(cluster.control_plane.pki.ca.cert))
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    headers = {"Authorization": f"Bearer {BENCH_TOKEN}"}
    return httpx.Client(
        base_url=cluster.control_plane.url, verify=context, headers=headers, limits=limits, timeout=30
    )


def open_loop(send: Callable[[int], bool], rate: float, seconds: float) -> tuple[list[float], int]:
    """Requests due every 1/rate s; each latency runs from its due time."""
    total = int(rate * seconds)
    latencies: list[float] = []
    failed = 0
    lock = threading.Lock()
    start = time.perf_counter() + 0.1

    def one(index: int) -> None:
        nonlocal failed
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        ok = send(index)
        elapsed = time.perf_counter() - due
        with lock:
            latencies.append(elapsed)
            failed += 0 if ok else 1

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(one, range(total)))
    return latencies, failed


def measure(cluster: Cluster, wiring: str, ns: str, rate: float, seconds: float) -> list[Result]:
    results = []
    with client(cluster) as http:
        operations: dict[str, Callable[[int], bool]] = {
            "get pod": lambda i: (
                http.get(f"/api/v1/namespaces/{ns}/pods/p-{i % 500}").status_code in (200, 404)
            ),
            "list pods": lambda i: http.get(f"/api/v1/namespaces/{ns}/pods?limit=10").status_code == 200,
            "create pod": lambda i: (
                http.post(f"/api/v1/namespaces/{ns}/pods", json=scenarios.pod(f"p-{i}", ns)).status_code
                == 201
            ),
        }
        for name, send in operations.items():
            send(10_000_000)  # warm: connections, caches of the first decision
            latencies, failed = open_loop(send, rate, seconds)
            results.append(
                Result(wiring, name, len(latencies), failed, _pct(latencies, 50), _pct(latencies, 99))
            )
    return results


def _pct(values: Sequence[float], percent: int) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    if percent == 50:
        return statistics.median(ordered) * 1000
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))] * 1000


def run(policy_lines: int, rate: float, seconds: float, workdir: Path) -> list[str]:
    with running_cluster(workdir) as cluster:
        return run_on(cluster, policy_lines, rate, seconds)


def run_on(cluster: Cluster, policy_lines: int, rate: float, seconds: float) -> list[str]:
    """Both wirings on a running cluster; it is left wired to gatekeeper again."""
    prepare(cluster, policy_lines)
    results: list[Result] = []
    try:
        for wiring in WIRINGS:
            ns = f"{NS}-{wiring}-{int(time.time())}"
            cluster.use(AUTHORIZATION_CONFIG if wiring == "gatekeeper" else IN_TREE)
            setup_namespace(cluster, ns)
            results += measure(cluster, wiring, ns, rate, seconds)
    finally:
        cluster.use(AUTHORIZATION_CONFIG)
    return table(results, policy_lines, rate)


def table(results: list[Result], policy_lines: int, rate: float) -> list[str]:
    by = {(r.wiring, r.operation): r for r in results}
    rows = [
        f"{'operation':<11} {'wiring':<11} {'sent':>5} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'p50 vs in-tree':>15}   ({policy_lines} policy lines, {rate:g} req/s)"
    ]
    for operation in ("get pod", "list pods", "create pod"):
        base = by[("in-tree", operation)]
        for wiring in WIRINGS:
            r = by[(wiring, operation)]
            rows.append(
                f"{operation:<11} {wiring:<11} {r.sent:>5} {r.failed:>6} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
                f"{r.p50_ms / base.p50_ms:>14.2f}x"
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--policy-lines", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second of each operation")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each operation runs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gatekeeper-bench-cluster-") as workdir:
        for row in run(args.policy_lines, args.rate, args.seconds, Path(workdir)):
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
