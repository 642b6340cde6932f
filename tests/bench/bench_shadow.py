"""What the shadow policy costs /authorize: CPU per request at 2,000 req/s with and without it.

    python -m tests.bench.bench_shadow                          # 2 workers, 3 rounds of 10 s each
    python -m tests.bench.bench_shadow --smoke                  # seconds: checks that it all works

`gatekeeper serve` as tests/bench/bench_http.py runs it (a generated `--rules`-line policy, all
four admission plugins, a SQLite store, `--workers` processes), five ways: without a shadow
policy, and with `--shadow-authorization-policy-file` naming the same policy with every tenth
line dropped (so part of the mix is decided differently and takes the disagreement path), each
without and with `--audit-log-path` (with it, every disagreement is also audited); and a "wide"
shadow that allows everything, with the audit log: every review the policy does not allow
disagrees and is audited, the worst case. The load is bench_http's: /authorize
SubjectAccessReviews of the engine benchmark's mix from tests/bench/loadgen.py, open loop at
`--rate`, each request's latency from its due time.

Rounds interleave the servers (each of the five, then each again), so that a slow spell of the
shared machine falls on all of them alike; the median round by CPU is printed. `CPU µs/req` is
the server's CPU time (all its processes, from /proc) per answered request, the median over the
rounds; `+CPU` the difference from the server without a shadow and with the same audit setting;
`disagree` the share of reviews the shadow decided differently (from /metrics).

No assertion on time: the numbers are printed.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.bench import bench_http

SERVERS: dict[str, tuple[str | None, bool]] = {  # name: (shadow policy file, with the audit log)
    "no shadow": (None, False),
    "shadow": ("shadow.jsonl", False),
    "no shadow, audit": (None, True),
    "shadow, audit": ("shadow.jsonl", True),
    "wide shadow, audit": ("wide.jsonl", True),
}
# A shadow that allows every request: all that the policy does not allow disagrees, and is audited.
WIDE = (
    '{"user":"*","nonResourcePath":"*"}\n'
    '{"user":"*","namespace":"*","resource":"*","apiGroup":"*"}\n'
)


def write_shadows(w: bench_http.Workdir) -> None:
    """shadow.jsonl: the policy with every tenth rule dropped (the caller's line stays), so some
    grants the mix uses are lost; wide.jsonl: everything allowed."""
    lines = (w.root / "abac.jsonl").read_text().splitlines(keepends=True)
    (w.root / "shadow.jsonl").write_text("".join(line for n, line in enumerate(lines) if n == 0 or n % 10))
    (w.root / "wide.jsonl").write_text(WIDE)


def command(w: bench_http.Workdir, port: int, workers: int, name: str) -> list[str]:
    shadow, audited = SERVERS[name]
    args = bench_http.server_commands(w, port, workers)["gatekeeper"]
    if shadow:
        args += ["--shadow-authorization-policy-file", str(w.root / shadow)]
    if audited:
        args += ["--audit-log-path", str(w.root / f"audit-{name.replace(', ', '-').replace(' ', '-')}.log")]
    return args


def shadow_counts(w: bench_http.Workdir, port: int) -> dict[str, float]:
    """gatekeeper_shadow_decisions_total by result, since the server started (warm-up included)."""
    context = ssl.create_default_context(cafile=str(w.certs / "ca.crt"))
    context.load_cert_chain(w.certs / "kube-apiserver.crt", w.certs / "kube-apiserver.key")
    with httpx.Client(verify=context, timeout=10) as client:
        text = client.get(f"https://127.0.0.1:{port}/metrics").raise_for_status().text
    return {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gatekeeper_shadow_decisions_total"
    }


def measure(w: bench_http.Workdir, args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    port = bench_http._free_port()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
    for _ in range(args.rounds):
        for name in SERVERS:
            with bench_http.serving(command(w, port, args.workers, name), port, w.root, "gatekeeper") as pid:
                authorize = ("/authorize", "authorize.jsonl", args, args.rate)
                bench_http.load(w, port, *authorize, duration=min(1.0, args.duration))  # warm up
                result = bench_http.load(w, port, *authorize, server=pid)
                counts = shadow_counts(w, port)
                decided = sum(counts.values())
                result["disagree"] = (decided - counts["agree"]) / decided if decided else None
                results[name].append(result)
    return results


def table(results: dict[str, list[dict[str, Any]]], rate: float) -> list[str]:
    rows = [f"{'server':<18} {'load':>7} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'CPU µs/req':>10} "
            f"{'+CPU':>6} {'disagree':>8} {'non-2xx':>7} {'errors':>6}"]
    cpu = {name: statistics.median(r["server_cpu_us"] for r in runs) for name, runs in results.items()}
    for name, runs in results.items():
        run = sorted(runs, key=lambda r: r["server_cpu_us"])[len(runs) // 2]  # the median round
        baseline = "no shadow, audit" if SERVERS[name][1] else "no shadow"
        extra = f"{cpu[name] - cpu[baseline]:+.0f}" if SERVERS[name][0] else ""
        share = f"{run['disagree'] * 100:.1f} %" if run["disagree"] is not None else ""
        bad = sum(n for code, n in run["statuses"].items() if not code.startswith("2"))
        rows.append(
            f"{name:<18} {f'{rate:g}/s':>7} {run['rps']:>6.0f} {run['p50_ms']:>7.2f} {run['p99_ms']:>7.2f} "
            f"{cpu[name]:>10.0f} {extra:>6} {share:>8} {bad:>7} {run['errors']:>6}"
        )
    return rows


def run(args: argparse.Namespace) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="gatekeeper-bench-shadow-") as tmp:
        w = bench_http.Workdir(Path(tmp), args.rules)
        w.prepare()
        write_shadows(w)
        return table(measure(w, args), args.rate)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the five servers (median)")
    parser.add_argument("--rate", type=float, default=2000.0, help="/authorize requests per second")
    parser.add_argument("--rules", type=int, default=10_000, help="ABAC policy lines")
    parser.add_argument("--smoke", action="store_true", help="tiny: 1 worker, 0.5 s, 4 connections")
    args = parser.parse_args(argv)
    if args.smoke:
        args.workers, args.connections, args.processes = 1, 4, 1
        args.duration, args.rounds, args.rate, args.rules = 0.5, 1, 50.0, 50
    return args


def main(argv: Sequence[str] | None = None) -> None:
    for row in run(parse_args(argv)):
        print(row)


if __name__ == "__main__":
    main()
