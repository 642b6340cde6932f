"""Webhooks end to end over HTTPS: gatekeeper against an empty endpoint on the same stack, one run.

    python -m tests.bench.bench_http                           # 2 workers, 10 s per measurement
    python -m tests.bench.bench_http --duration 20 --rounds 3  # steadier medians
    python -m tests.bench.bench_http --smoke                   # seconds: checks that it all works

Servers, one at a time, each with `--workers` processes: `empty` (a bare ASGI app answering {}),
`fastapi-empty` (one FastAPI route answering {}), both on gatekeeper's TLS and protocol settings
(tests/bench/empty_server.py), and `gatekeeper serve` with a generated ABAC policy (`--rules`
lines plus the caller's), all four admission plugins and a SQLite store. The load comes from
tests/bench/loadgen.py in separate processes, presenting the kube-apiserver client certificate
on keep-alive connections:

- saturation: closed loop on `--connections` connections; req/s, latency, and the ratio to the
  empty endpoint's req/s in the same round (the median over `--rounds` rounds is printed);
- fixed rates (open loop, `--rates`, and `--admit-rates` for /admit; `40%` is that share of the
  empty endpoint's saturation in the same run): p50/p95/p99 from each request's due time;
- then round two's targets (docs/performance.md), each from this run's table, met or not.

`CPU µs/req` is the server's CPU time (all its processes, user + system, from /proc) divided by
the requests answered: the cost of a request, which other load on the machine hardly changes.

No assertion on time: the numbers are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatekeeper import pki
from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.policy import parse_policy
from tests.bench.bench_abac import policy_text, request_mix
from tests.support.processes import process_tree, stop

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
CALLER_RULE = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"*"}}\n'
)
NAMESPACE = "bench"
STATE = f"""apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
status: {{phase: Active}}
---
apiVersion: v1
kind: LimitRange
metadata: {{name: defaults, namespace: {NAMESPACE}}}
spec:
  limits:
  - type: Container
    defaultRequest: {{cpu: 100m, memory: 128Mi}}
    default: {{cpu: 500m, memory: 256Mi}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: default, namespace: {NAMESPACE}}}
---
apiVersion: v1
kind: ResourceQuota
metadata: {{name: compute, namespace: {NAMESPACE}}}
spec:
  hard: {{pods: "1000000000", requests.cpu: "100000000", requests.memory: 100000Ti}}
"""


def sar_body(a: Attributes) -> bytes:
    spec: dict[str, Any] = {"user": a.user, "groups": list(a.groups)}
    if a.resource_request:
        spec["resourceAttributes"] = {
            "verb": a.verb, "namespace": a.namespace, "group": a.api_group, "resource": a.resource
        }
    else:
        spec["nonResourceAttributes"] = {"verb": a.verb, "path": a.path}
    doc = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    return json.dumps(doc, separators=(",", ":")).encode()


def admission_body() -> bytes:
    """A pod CREATE that all four plugins act on; __UID__ becomes a fresh uid per request."""
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-__UID__", "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    }
    doc = {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "__UID__", "name": "web-__UID__", "namespace": NAMESPACE, "operation": "CREATE",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": pod, "oldObject": None, "dryRun": False,
        },
    }
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Workdir:
    root: Path
    rules: int

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    def prepare(self) -> None:
        pki.ensure_dev_pki(self.certs)
        pki.ensure_dev_client(self.certs, pki.DEV_CLIENT)
        text = policy_text(self.rules)
        (self.root / "abac.jsonl").write_text(CALLER_RULE + text)
        (self.root / "state.yaml").write_text(STATE)
        mix = request_mix(parse_policy(text.encode(), "bench"), 2_000)
        (self.root / "authorize.jsonl").write_bytes(b"\n".join(sar_body(a) for a in mix) + b"\n")
        (self.root / "admit.jsonl").write_bytes(admission_body() + b"\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) of a process and all its descendants that are alive (Linux /proc)."""
    return sum(_cpu_seconds(pid) for pid in process_tree(root))


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # exited meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving(command: Sequence[str], port: int, workdir: Path, name: str) -> Iterator[int]:
    """Run a server until the block ends (yields its pid); it must accept connections within 30 s."""
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed below, after the process
    process = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=ENV)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {(workdir / f'{name}.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.1)
        yield process.pid
    finally:
        stop(process, timeout=15)
        log.close()


def server_commands(w: Workdir, port: int, workers: int) -> dict[str, list[str]]:
    empty = [sys.executable, "-m", "tests.bench.empty_server", "--port", str(port),
             "--cert-dir", str(w.certs), "--workers", str(workers)]
    gatekeeper = [
        sys.executable, "-m", "gatekeeper.cli", "serve", "--secure-port", str(port),
        "--cert-dir", str(w.certs), "--workers", str(workers), "--log-level", "warning",
        "--authorization-policy-file", str(w.root / "abac.jsonl"), "--state", str(w.root / "state.yaml"),
        "--store", f"sqlite:///{w.root / 'gatekeeper.db'}",
    ]
    return {"empty": [*empty, "--app", "raw"], "fastapi-empty": [*empty, "--app", "fastapi"],
            "gatekeeper": gatekeeper}


def load(
    w: Workdir, port: int, path: str, bodies: str, args: argparse.Namespace,
    rate: float | None = None, duration: float | None = None, server: int | None = None,
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "tests.bench.loadgen", "--url", f"https://127.0.0.1:{port}{path}",
        "--bodies", str(w.root / bodies), "--ca", str(w.certs / "ca.crt"),
        "--cert", str(w.certs / "kube-apiserver.crt"), "--key", str(w.certs / "kube-apiserver.key"),
        "--connections", str(args.connections), "--duration", str(duration or args.duration),
        "--processes", str(args.processes),
    ]
    if rate:
        command += ["--rate", str(rate)]
    cpu_before = tree_cpu_seconds(server) if server else 0.0
    done = subprocess.run(command, capture_output=True, check=True, env=ENV)
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    if server and result["requests"]:
        result["server_cpu_us"] = (tree_cpu_seconds(server) - cpu_before) / result["requests"] * 1e6
    return result


# (server, path, bodies) of each endpoint measured
ENDPOINTS = {
    "empty": ("empty", "/empty", "authorize.jsonl"),
    "fastapi-empty": ("fastapi-empty", "/empty", "authorize.jsonl"),
    "/authorize": ("gatekeeper", "/authorize", "authorize.jsonl"),
    "/admit": ("gatekeeper", "/admit", "admit.jsonl"),
}


def measure_all(w: Workdir, args: argparse.Namespace) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Results per (endpoint, mode): saturation rounds, then each fixed rate once."""
    port = _free_port()
    commands = server_commands(w, port, args.workers)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for server in ("empty", "fastapi-empty", "gatekeeper"):
            with serving(commands[server], port, w.root, server) as pid:
                for endpoint, (owner, path, bodies) in ENDPOINTS.items():
                    if owner != server:
                        continue
                    load(w, port, path, bodies, args, duration=min(1.0, args.duration))  # warm up
                    result = load(w, port, path, bodies, args, server=pid)
                    results.setdefault((endpoint, "saturation"), []).append(result)
                    if len(results[(endpoint, "saturation")]) == args.rounds:
                        for rate in args.admit_rates if endpoint == "/admit" else args.rates:
                            per_second = resolve_rate(rate, results)
                            fixed = load(w, port, path, bodies, args, per_second, server=pid)
                            results[(endpoint, rate_label(rate, per_second))] = [fixed]
    return results


def resolve_rate(rate: str, results: dict[tuple[str, str], list[dict[str, Any]]]) -> float:
    """`1000` is 1,000 req/s; `40%` is 40 % of the empty endpoint's median saturation in this run."""
    if not rate.endswith("%"):
        return float(rate)
    empty = float(statistics.median(r["rps"] for r in results[("empty", "saturation")]))
    return max(1.0, float(rate[:-1]) / 100 * empty)


def rate_label(rate: str, per_second: float) -> str:
    return f"{rate} {per_second:.0f}/s" if rate.endswith("%") else f"{per_second:g}/s"


# Round two's targets (docs/performance.md): (what, endpoint, mode, column, bound, at most?)
TARGETS = (
    ("/authorize >= 70 % of empty's req/s", "/authorize", "saturation", "share", 70.0, False),
    ("/authorize p99 <= 5 ms at 40 % of empty", "/authorize", "40%", "p99_ms", 5.0, True),
    ("/admit >= 20 % of empty's req/s", "/admit", "saturation", "share", 20.0, False),
    ("/admit <= 300 µs server CPU per request", "/admit", "saturation", "server_cpu_us", 300.0, True),
    ("/admit p99 <= 10 ms at 10 % of empty", "/admit", "10%", "p99_ms", 10.0, True),
)


def targets(results: dict[tuple[str, str], list[dict[str, Any]]]) -> list[str]:
    """Each target's value from this run's table, met or not; a target whose load was not run is left out."""
    empty = float(statistics.median(r["rps"] for r in results[("empty", "saturation")]))
    rows = [f"{'target':<42} {'measured':>9} {'':>8}"]
    for what, endpoint, mode, column, bound, at_most in TARGETS:
        runs = next((v for (e, m), v in results.items() if e == endpoint and m.split()[0] == mode), None)
        if runs is None:
            continue
        run = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
        value = run["rps"] / empty * 100 if column == "share" else float(run.get(column, 0.0))
        met = value <= bound if at_most else value >= bound
        rows.append(f"{what:<42} {value:>9.1f} {'met' if met else 'not met':>8}")
    return rows


def table(results: dict[tuple[str, str], list[dict[str, Any]]]) -> list[str]:
    rows = [
        f"{'endpoint':<14} {'load':>11} {'req/s':>8} {'vs empty':>9} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'CPU µs/req':>10} {'non-2xx':>8} {'errors':>7}"
    ]
    ceiling = {}
    for (endpoint, mode), runs in results.items():
        if mode == "saturation":
            ceiling[endpoint] = statistics.median(r["rps"] for r in runs)
    for (endpoint, mode), runs in results.items():
        run = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]  # the median round
        ratio = ""
        if mode == "saturation" and ceiling.get("empty"):
            ratio = f"{run['rps'] / ceiling['empty'] * 100:.0f} %"
        bad = sum(n for code, n in run["statuses"].items() if not code.startswith("2"))
        rows.append(
            f"{endpoint:<14} {mode:>11} {run['rps']:>8.0f} {ratio:>9} {run['p50_ms']:>7.2f} "
            f"{run['p95_ms']:>7.2f} {run['p99_ms']:>7.2f} {run['max_ms']:>7.1f} "
            f"{run.get('server_cpu_us', 0):>10.0f} {bad:>8} {run['errors']:>7}"
        )
    return rows


def run(args: argparse.Namespace) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="gatekeeper-bench-") as tmp:
        w = Workdir(Path(tmp), args.rules)
        w.prepare()
        results = measure_all(w, args)
        return [*table(results), "", *targets(results)]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=1, help="saturation rounds (median reported)")
    share = "req/s, or N%% of the empty endpoint's saturation in the same run"
    parser.add_argument("--rates", nargs="*", default=["500", "1000", "2000", "40%"], help=share)
    parser.add_argument("--admit-rates", nargs="*", default=["500", "1000", "10%"], help=share)
    parser.add_argument("--rules", type=int, default=10_000, help="ABAC policy lines")
    parser.add_argument("--smoke", action="store_true", help="tiny: 1 worker, 0.5 s, 4 connections")
    args = parser.parse_args(argv)
    if args.smoke:
        args.workers, args.connections, args.processes = 1, 4, 1
        args.duration, args.rounds, args.rates, args.admit_rates, args.rules = 0.5, 1, ["50"], ["1%"], 50
    return args


def main(argv: Sequence[str] | None = None) -> None:
    for row in run(parse_args(argv)):
        print(row)


if __name__ == "__main__":
    main()
