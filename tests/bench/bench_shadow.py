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
import asyncio
import ssl
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request

from gatekeeper.authn.user import UserInfo
from gatekeeper.config import Settings
from gatekeeper.server import authorize
from gatekeeper.server.audit import AuditLog
from gatekeeper.server.runtime import Runtime
from tests.bench import bench_http

CALLER = UserInfo("kube-apiserver", groups=("system:authenticated",))

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


def baseline(name: str) -> str:
    """The server without a shadow that `name` is compared with: the same audit setting."""
    return "no shadow, audit" if SERVERS[name][1] else "no shadow"


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
        extra = f"{cpu[name] - cpu[baseline(name)]:+.0f}" if SERVERS[name][0] else ""
        share = f"{run['disagree'] * 100:.1f} %" if run["disagree"] is not None else ""
        bad = sum(n for code, n in run["statuses"].items() if not code.startswith("2"))
        rows.append(
            f"{name:<18} {f'{rate:g}/s':>7} {run['rps']:>6.0f} {run['p50_ms']:>7.2f} {run['p99_ms']:>7.2f} "
            f"{cpu[name]:>10.0f} {extra:>6} {share:>8} {bad:>7} {run['errors']:>6}"
        )
    return rows


def handler_runtime(w: bench_http.Workdir, name: str) -> SimpleNamespace:
    """What request.app is to the handler: a real Runtime for server `name`, and its audit log."""
    shadow, audited = SERVERS[name]
    settings = Settings(
        authorization_policy_file=w.root / "abac.jsonl", state=(w.root / "state.yaml",), store="memory://",
        shadow_authorization_policy_file=w.root / shadow if shadow else None,
    )
    audit = AuditLog(w.root / f"in-process-{len(name)}-{audited}.log", 0, 0) if audited else None
    return SimpleNamespace(state=SimpleNamespace(runtime=Runtime(settings), audit=audit))


async def handle_all(app: SimpleNamespace, bodies: Sequence[bytes]) -> None:
    """gatekeeper.server.authorize.authorize, the /authorize handler itself, once per body."""
    for body in bodies:
        async def receive(body: bytes = body) -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "path": "/authorize", "app": app,
                 "state": {"caller": CALLER}, "headers": [(b"content-type", b"application/json")]}
        await authorize.authorize(Request(scope, receive))


def in_process(w: bench_http.Workdir, calls: int, rounds: int) -> list[str]:
    """CPU µs per call of the handler (parse, decide, observe, answer), all threads counted (the
    audit writer's too), per server, rounds interleaved: the shadow's cost without HTTP's noise."""
    bodies = (w.root / "authorize.jsonl").read_bytes().splitlines()
    bodies = (bodies * (calls // len(bodies) + 1))[:calls]
    apps = {name: handler_runtime(w, name) for name in SERVERS}
    costs: dict[str, list[float]] = {name: [] for name in SERVERS}
    for _ in range(rounds):
        for name, app in apps.items():
            started = time.process_time()
            asyncio.run(handle_all(app, bodies))
            if app.state.audit is not None:
                app.state.audit.close()  # its last batch written, inside the measurement
                app.state.audit = AuditLog(app.state.audit.path, 0, 0)
            costs[name].append((time.process_time() - started) / calls * 1e6)
    rows = [f"{'handler, in process':<20} {'CPU µs/call':>11} {'+CPU':>6}"]
    median = {name: statistics.median(values) for name, values in costs.items()}
    for name, (shadow, _) in SERVERS.items():
        extra = f"{median[name] - median[baseline(name)]:+.1f}" if shadow else ""
        rows.append(f"{name:<20} {median[name]:>11.1f} {extra:>6}".rstrip())
    return rows


def run(args: argparse.Namespace) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="gatekeeper-bench-shadow-") as tmp:
        w = bench_http.Workdir(Path(tmp), args.rules)
        w.prepare()
        write_shadows(w)
        return [*table(measure(w, args), args.rate), "", *in_process(w, args.calls, args.rounds)]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the five servers (median)")
    parser.add_argument("--rate", type=float, default=2000.0, help="/authorize requests per second")
    parser.add_argument("--rules", type=int, default=10_000, help="ABAC policy lines")
    parser.add_argument("--calls", type=int, default=50_000, help="handler calls per in-process round")
    parser.add_argument("--smoke", action="store_true", help="tiny: 1 worker, 0.5 s, 4 connections")
    args = parser.parse_args(argv)
    if args.smoke:
        args.workers, args.connections, args.processes = 1, 4, 1
        args.duration, args.rounds, args.rate, args.rules, args.calls = 0.5, 1, 50.0, 50, 500
    return args


def main(argv: Sequence[str] | None = None) -> None:
    for row in run(parse_args(argv)):
        print(row)


if __name__ == "__main__":
    main()
