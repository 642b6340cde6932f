"""uvicorn against Granian and Hypercorn: the same apps, the same TLS and load, one run.

    python -m tests.bench.bench_servers                          # 2 workers, 3 rounds of 10 s
    python -m tests.bench.bench_servers --duration 10 --rounds 3 --rate-share 0.4
    python -m tests.bench.bench_servers --smoke                  # seconds: checks that it all works

Servers, each with `--workers` processes, on loopback with the same certificate, key and client
CA (client certificates optional per connection), HTTP/1.1 and uvloop:

- `uvicorn` with httptools, as `gatekeeper serve` runs it: gatekeeper's TLS context and protocol
  class, which puts the client certificate in the ASGI TLS extension (tests/bench/empty_server.py
  for the bare app, `gatekeeper serve` itself for gatekeeper's);
- `granian` (Rust, rustls; ASGI interface) and `hypercorn` (Python, asyncio on uvloop), launched by
  tests/bench/other_servers.py, which builds gatekeeper's app with serve's own settings code and
  factory.

Apps: `bare`, a bare ASGI callable answering {}; gatekeeper's app, for /authorize (the
SubjectAccessReview mix of bench_http against a `--rules`-line policy) and /admit (bench_http's
pod CREATE with a LimitRange, ServiceAccount and ResourceQuota, a fresh uid each time; a fresh
SQLite store for every server start). The `auth` column says how the caller is authenticated:
`x509`, the kube-apiserver client certificate (only where the server delivers it to the app:
the second table checks each server with one /authorize that presents the certificate and no
token), or `token`, a bearer token of --token-auth-file presented without a client certificate
(on uvicorn a presented certificate would win over the token). The bare rows present the client
certificate everywhere (mutual TLS, verified by the server).

The load is tests/bench/loadgen.py in `--processes` processes: closed loop on `--connections`
keep-alive connections for saturation (rounds interleave the servers; the median round is
printed), then open loop at one fixed rate for every server: `--rate-share` of uvicorn's bare
app's median req/s, and `--admit-rate` for /admit (whose saturation is far below it). `vs bare`
is the ratio to the same server's bare app, `vs uvicorn` to uvicorn's bare app. `CPU µs/req` is
the server's CPU time (all its processes, from /proc) per answered request.

No assertion on time: the numbers are printed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.bench_http import ENV, Workdir, _free_port, server_commands, serving, tree_cpu_seconds

SERVERS = ("uvicorn", "granian", "hypercorn")
APPS = ("bare", "gatekeeper")
TOKEN = "bench-servers-caller-token"
Result = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One measured endpoint: on which server and app, and how the caller authenticates."""

    server: str
    app: str
    path: str
    auth: str  # "-" (the bare app authenticates nobody), "x509" or "token"

    @property
    def bodies(self) -> str:
        return "admit.jsonl" if self.path == "/admit" else "authorize.jsonl"

    @property
    def label(self) -> str:
        return "bare" if self.app == "bare" else self.path


def cases_of(server: str, app: str) -> list[Case]:
    if app == "bare":
        return [Case(server, app, "/empty", "-")]
    auths = ("x509", "token") if server == "uvicorn" else ("token",)
    return [Case(server, app, path, auth) for path in ("/authorize", "/admit") for auth in auths]


@dataclass(frozen=True)
class Probe:
    """What one request over a fresh connection saw: TLS version, cipher, and its status."""

    tls: str
    cipher: str
    status: int


@dataclass
class Results:
    saturation: dict[Case, list[Result]]
    fixed: dict[Case, Result]
    rates: dict[Case, float]
    probes: dict[tuple[str, str], Probe]


def prepare(root: Path, rules: int) -> Workdir:
    w = Workdir(root, rules)
    w.prepare()
    (root / "tokens.csv").write_text(f"{TOKEN},kube-apiserver,kube-apiserver-uid\n")
    return w


def gatekeeper_flags(w: Workdir, store: str) -> list[str]:
    return [
        "--log-level", "warning", "--authorization-policy-file", str(w.root / "abac.jsonl"),
        "--state", str(w.root / "state.yaml"), "--store", f"sqlite:///{w.root / store}",
        "--token-auth-file", str(w.root / "tokens.csv"),
    ]


def command(w: Workdir, server: str, app: str, port: int, workers: int, start: int) -> list[str]:
    """The command line of one server start (`start` numbers the store, fresh for each start)."""
    flags = gatekeeper_flags(w, f"gatekeeper-{server}-{start}.db")
    if server == "uvicorn" and app == "bare":
        return server_commands(w, port, workers)["empty"]  # empty_server --app raw
    if server == "uvicorn":
        return [sys.executable, "-m", "gatekeeper.cli", "serve", "--secure-port", str(port),
                "--cert-dir", str(w.certs), "--workers", str(workers), *flags]
    launcher = [sys.executable, "-m", "tests.bench.other_servers", server, app, "--port", str(port),
                "--cert-dir", str(w.certs), "--workers", str(workers)]
    return [*launcher, "--", *flags] if app == "gatekeeper" else launcher


def probe(w: Workdir, port: int, app: str, deadline: float = 60.0) -> Probe:
    """One POST presenting the client certificate and no token (retried while workers start)."""
    context = ssl.create_default_context(cafile=str(w.certs / "ca.crt"))
    context.load_cert_chain(w.certs / "kube-apiserver.crt", w.certs / "kube-apiserver.key")
    path = "/empty" if app == "bare" else "/authorize"
    body = (w.root / "authorize.jsonl").read_bytes().splitlines()[0]
    until = time.monotonic() + deadline
    while True:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=deadline)
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            status = connection.getresponse().status
            sock: Any = connection.sock
            return Probe(str(sock.version()), str(sock.cipher()[0]), status)
        except (OSError, http.client.HTTPException):
            if time.monotonic() > until:
                raise
            time.sleep(0.2)
        finally:
            connection.close()


def load(w: Workdir, port: int, case: Case, args: argparse.Namespace, rate: float | None = None,
         duration: float | None = None, server: int | None = None) -> Result:
    """One loadgen run against `case`; with `server` (its pid) also its CPU per request."""
    command = [
        sys.executable, "-m", "tests.bench.loadgen", "--url", f"https://127.0.0.1:{port}{case.path}",
        "--bodies", str(w.root / case.bodies), "--ca", str(w.certs / "ca.crt"),
        "--connections", str(args.connections), "--duration", str(duration or args.duration),
        "--processes", str(args.processes),
    ]
    if case.auth == "token":
        command += ["--header", f"Authorization: Bearer {TOKEN}"]
    else:
        command += ["--cert", str(w.certs / "kube-apiserver.crt"),
                    "--key", str(w.certs / "kube-apiserver.key")]
    if rate:
        command += ["--rate", f"{rate:.0f}"]
    cpu_before = tree_cpu_seconds(server) if server else 0.0
    done = subprocess.run(command, capture_output=True, check=True, env=ENV)
    result: Result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    if server and result["requests"]:
        result["server_cpu_us"] = (tree_cpu_seconds(server) - cpu_before) / result["requests"] * 1e6
    return result


def instances() -> Iterator[tuple[str, str]]:
    for server in SERVERS:
        for app in APPS:
            yield server, app


def measure(w: Workdir, args: argparse.Namespace) -> Results:
    """Saturation rounds of every server; in the last, each endpoint's fixed rate after its round.
    uvicorn's bare app comes first in each round, so the rate it sets is known before any other."""
    results = Results({}, {}, {}, {})
    port, starts = _free_port(), iter(range(1, 1_000_000))
    for last in [False] * (args.rounds - 1) + [True]:  # each round runs every server once
        for server, app in instances():
            cmd = command(w, server, app, port, args.workers, next(starts))
            with serving(cmd, port, w.root, f"{server}-{app}") as pid:
                results.probes[(server, app)] = probe(w, port, app)
                for case in cases_of(server, app):
                    if args.warmup:
                        load(w, port, case, args, duration=args.warmup)
                    results.saturation.setdefault(case, []).append(load(w, port, case, args, server=pid))
                    if last:
                        results.rates[case] = fixed_rate(case, results, args)
                        results.fixed[case] = load(w, port, case, args, results.rates[case], server=pid)
    return results


def fixed_rate(case: Case, results: Results, args: argparse.Namespace) -> float:
    if case.path == "/admit":
        return float(args.admit_rate)
    return float(args.rate_share * median_rps(results.saturation[Case("uvicorn", "bare", "/empty", "-")]))


def median_rps(runs: list[Result]) -> float:
    return statistics.median(r["rps"] for r in runs)


HEADER = (f"{'server':<10} {'app':<11} {'auth':<5} {'load':>10} {'req/s':>7} {'vs bare':>8} "
          f"{'vs uvicorn':>10} {'p50 ms':>7} {'p99 ms':>7} {'CPU µs/req':>10} {'non-2xx':>7} {'errors':>6}")


def row(case: Case, load: str, run: Result, ratios: tuple[str, str]) -> str:
    bad = sum(n for code, n in run["statuses"].items() if not code.startswith("2"))
    return (
        f"{case.server:<10} {case.label:<11} {case.auth:<5} {load:>10} {run['rps']:>7.0f} {ratios[0]:>8} "
        f"{ratios[1]:>10} {run['p50_ms']:>7.2f} {run['p99_ms']:>7.2f} "
        f"{run.get('server_cpu_us', 0):>10.0f} {bad:>7} {run['errors']:>6}"
    )


def table(results: Results) -> list[str]:
    bare = {c.server: median_rps(runs) for c, runs in results.saturation.items() if c.app == "bare"}
    rows = [HEADER]
    for case, runs in results.saturation.items():
        run = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]  # the median round
        ratios = (f"{run['rps'] / bare[case.server]:.0%}", f"{run['rps'] / bare['uvicorn']:.0%}")
        rows.append(row(case, "saturation", run, ratios))
    for case, run in results.fixed.items():
        rows.append(row(case, f"{results.rates[case]:.0f}/s", run, ("", "")))
    return rows


def tls_table(probes: dict[tuple[str, str], Probe]) -> list[str]:
    rows = [f"{'server':<10} {'TLS':<8} {'cipher':<24} client certificate reaches the app"]
    for server in SERVERS:
        tls = probes[(server, "bare")]
        status = probes[(server, "gatekeeper")].status
        reaches = "yes" if status == 200 else "no"
        rows.append(f"{server:<10} {tls.tls:<8} {tls.cipher:<24} "
                    f"{reaches} (/authorize with the certificate, no token: {status})")
    return rows


def run(args: argparse.Namespace) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="gatekeeper-bench-servers-") as tmp:
        results = measure(prepare(Path(tmp), args.rules), args)
    return [*table(results), "", *tls_table(results.probes)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="saturation rounds (median reported)")
    parser.add_argument("--rate-share", type=float, default=0.4,
                        help="fixed rate, as a share of uvicorn's bare app's req/s (default: 0.4)")
    parser.add_argument("--admit-rate", type=float, default=1000.0, help="fixed rate for /admit")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each measurement")
    parser.add_argument("--rules", type=int, default=10_000, help="ABAC policy lines")
    parser.add_argument("--smoke", action="store_true", help="tiny: 1 worker, 0.5 s, 4 connections")
    args = parser.parse_args(argv)
    if args.smoke:
        args.workers, args.connections, args.processes, args.duration, args.rounds = 1, 4, 1, 0.5, 1
        args.rate_share, args.admit_rate, args.rules, args.warmup = 0.02, 50.0, 50, 0.0
    return args


def main(argv: list[str] | None = None) -> None:
    for line in run(parse_args(argv)):
        print(line)


if __name__ == "__main__":
    main()
