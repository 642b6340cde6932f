"""/authorize latency while a large policy reloads, against the same load without a reload, in one run.

    python -m tests.bench.bench_reload                  # 1,000,000-line policy, 200 req/s, 30 s each
    python -m tests.bench.bench_reload --rules 200000   # any size
    python -m tests.bench.bench_reload --smoke          # seconds: checks that it all works

`gatekeeper serve` (one worker: a reload runs in each worker, on its own thread) with a generated
`--rules`-line policy (bench_abac's generator, bench_http's server flags). The same open-loop
load (tests/bench/loadgen.py: /authorize SubjectAccessReviews of the engine benchmark's mix at
`--rate`, each request's latency from its due time, so a stall is charged to every request it
delayed) runs twice: `no reload`, then `reload`, where one second in the policy file is replaced
(atomic rename, same size, another seed) and the server sent SIGHUP. The reload must have
finished inside the window (/readyz counts it) or the row says so; `reload s` is how long after
SIGHUP the new version answered.

Then the reload's steps in process, timed as CPU of the reload thread (which other load on
the machine hardly moves): each is a stretch that holds the GIL, so a request waits at least
that long. `at once` drops the replaced policy in one deallocation (before) and `in steps` is
release_in_steps' longest slice; `collection` is the full collection freeze_long_lived runs.

No assertion on time: the numbers are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from gatekeeper.authz.evaluator import Evaluator, release_in_steps
from gatekeeper.authz.policy import gc_paused, parse_policy
from gatekeeper.server.runtime import freeze_long_lived
from tests.bench import bench_http
from tests.bench.bench_abac import policy_text
from tests.support.processes import stop

MARKER = "reload-marker"  # a user only the new version allows
MARKER_RULE = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    f'"spec":{{"user":"{MARKER}","nonResourcePath":"*"}}}}\n'
)
MARKER_REVIEW = {
    "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
    "spec": {"user": MARKER, "nonResourceAttributes": {"path": "/version", "verb": "get"}},
}


@contextlib.contextmanager
def serving(command: Sequence[str], port: int, workdir: Path, startup: float) -> Iterator[int]:
    """bench_http.serving with room for a large policy's start-up (yields the server's pid)."""
    log = open(workdir / "gatekeeper.log", "wb")  # noqa: SIM115 - closed below, after the process
    process = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=bench_http.ENV)
    try:
        deadline = time.monotonic() + startup
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gatekeeper exited: {(workdir / 'gatekeeper.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("gatekeeper did not start")
            time.sleep(0.2)
        yield process.pid
    finally:
        stop(process, timeout=30)
        log.close()


def _client(w: bench_http.Workdir) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(w.certs / "ca.crt"))
    context.load_cert_chain(w.certs / "kube-apiserver.crt", w.certs / "kube-apiserver.key")
    return httpx.Client(verify=context, timeout=30)


def _wait_ready(w: bench_http.Workdir, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with _client(w) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"https://127.0.0.1:{port}/readyz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("gatekeeper did not become ready")
            time.sleep(0.2)


def _policy_reloads(client: httpx.Client, port: int) -> int:
    checks = client.get(f"https://127.0.0.1:{port}/readyz").json()["checks"]
    return int(checks["authorization policy"]["reloads"])


def _marker_allowed(client: httpx.Client, port: int) -> bool:
    answer = client.post(f"https://127.0.0.1:{port}/authorize", json=MARKER_REVIEW).json()
    return bool(answer["status"]["allowed"])


def reload_during(w: bench_http.Workdir, port: int, pid: int, delay: float, result: dict[str, Any]) -> None:
    """After `delay` s, replace the policy and SIGHUP the server; time until the new one answers."""
    time.sleep(delay)
    policy = w.root / "abac.jsonl"
    staging = policy.with_name(".abac.jsonl.new")
    staging.write_text(bench_http.CALLER_RULE + MARKER_RULE + policy_text(w.rules - 1, seed=8))
    os.replace(staging, policy)
    started = time.monotonic()
    os.kill(pid, signal.SIGHUP)
    with _client(w) as client:
        while not _marker_allowed(client, port):
            if time.monotonic() - started > 300:
                return
            time.sleep(0.05)
    result["reload_s"] = time.monotonic() - started


def measure(w: bench_http.Workdir, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    port = bench_http._free_port()
    command = bench_http.server_commands(w, port, 1)["gatekeeper"]
    results: dict[str, dict[str, Any]] = {}
    with serving(command, port, w.root, args.startup) as pid:
        _wait_ready(w, port, args.startup)  # the port opens before the worker has loaded the policy
        authorize = ("/authorize", "authorize.jsonl", args, args.rate)
        bench_http.load(w, port, *authorize, duration=min(3.0, args.duration))  # warm up
        results["no reload"] = bench_http.load(w, port, *authorize)
        timing: dict[str, Any] = {}
        reloader = threading.Thread(target=reload_during, args=(w, port, pid, 1.0, timing))
        reloader.start()
        results["reload"] = bench_http.load(w, port, *authorize)
        reloader.join()
        with _client(w) as client:
            results["reload"]["reloads"] = _policy_reloads(client, port)
        results["reload"].update(timing)
    return results


def table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    rows = [
        f"{'phase':<10} {'rules':>9} {'load':>7} {'requests':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>8} "
        f"{'non-2xx':>7} {'errors':>6} {'reload s':>8}"
    ]
    for phase, run in results.items():
        bad = sum(n for code, n in run["statuses"].items() if not code.startswith("2"))
        reload = "-" if phase == "no reload" else f"{run['reload_s']:.1f}" if "reload_s" in run else "none"
        if phase == "reload" and run.get("reloads") != 1:
            reload = f"{reload} ({run.get('reloads')} reloads)"
        rows.append(
            f"{phase:<10} {args.rules:>9} {args.rate:>5g}/s {run['requests']:>8} {run['p50_ms']:>7.2f} "
            f"{run['p99_ms']:>7.2f} {run['max_ms']:>8.1f} {bad:>7} {run['errors']:>6} {reload:>8}"
        )
    return rows


def steps(rules: int) -> list[str]:
    """The reload's GIL-holding steps, in this process (CPU ms of this thread)."""
    text = (bench_http.CALLER_RULE + policy_text(rules)).encode()
    clock = time.thread_time
    slices: list[float] = []
    mark = [0.0]

    def pause() -> None:
        now = clock()
        slices.append(now - mark[0])
        mark[0] = now

    with gc_paused():  # the deallocations alone, no collection
        first = Evaluator(parse_policy(text, "abac.jsonl"))
        started = clock()
        del first  # what dropping a replaced policy did: one chain of deallocations
        at_once = clock() - started
        holder = [Evaluator(parse_policy(text, "abac.jsonl"))]
        mark[0] = clock()
        release_in_steps(holder, pause)
        live = Evaluator(parse_policy(text, "abac.jsonl"))
    started = clock()
    freeze_long_lived()
    collection = clock() - started
    assert live.rule_count == rules + 1
    gc.unfreeze()
    header = f"{'reload step (CPU ms)':<28} {'rules':>9} {'at once':>8} {'in steps':>9} {'slices':>7}"
    return [
        f"{header} {'collection':>10}",
        f"{'replaced policy, collection':<28} {rules:>9} {at_once * 1000:>8.1f} {max(slices) * 1000:>9.2f} "
        f"{len(slices):>7} {collection * 1000:>10.1f}",
    ]


def run(args: argparse.Namespace) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="gatekeeper-bench-") as tmp:
        w = bench_http.Workdir(Path(tmp), args.rules)
        w.prepare()
        rows = table(measure(w, args), args)
    return [*rows, "", *steps(args.rules)]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rules", type=int, default=1_000_000, help="ABAC policy lines")
    parser.add_argument("--rate", type=float, default=200, help="requests per second, open loop")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--startup", type=float, default=180.0, help="seconds the server may take to start")
    parser.add_argument("--smoke", action="store_true", help="tiny: 200 rules, 3 s per phase")
    args = parser.parse_args(argv)
    args.processes = 1
    if args.smoke:
        args.rules, args.rate, args.duration, args.connections = 200, 50, 3.0, 2
    return args


def main(argv: Sequence[str] | None = None) -> None:
    for row in run(parse_args(argv)):
        print(row)


if __name__ == "__main__":
    main()
