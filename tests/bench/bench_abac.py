"""ABAC decisions: the indexed evaluator against Kubernetes' linear scan and pycasbin, in one run.

    python -m tests.bench.bench_abac                 # 10, 1,000, 10,000 and 100,000 rules
    python -m tests.bench.bench_abac --sizes 100000  # any sizes

All sides evaluate the same rules on the same request mix (user hits, group hits, misses,
non-resource paths); each decision is timed on its own, and the table reports the median and p99
per decision and the ratio of the medians to the indexed evaluator's. pycasbin (the `bench`
extra: pip install -e '.[bench]') gets an equivalent ABAC model (tests/bench/casbin_abac.py); its
column is left out, with a note, when it is not installed. Every side must agree with the indexed
evaluator on every request it decides, or the row says so.

Load: a fresh process reads and indexes the policy file as `gatekeeper serve` does and reports
wall and CPU time and its resident memory afterwards (VmRSS, the interpreter and imports
included). No assertion on time: the numbers are printed.

    python -m tests.bench.bench_abac --callgrind --sizes 10000

Instructions per decision, which a noisy machine does not move: each side decides a fixed
slice of the mix in its own process under `valgrind --tool=callgrind`, counted only inside
functools.reduce (`--toggle-collect`), which drives the decision loop and nothing else; a run
whose decision is a no-op gives the loop's own cost, which is subtracted.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.evaluator import Evaluator, linear_first_match, load_evaluator
from gatekeeper.authz.policy import Policy, Rule, parse_policy

RESOURCES = ("pods", "services", "secrets", "configmaps", "deployments", "events")
NAMESPACES = ("default", "team-a", "team-b", "kube-system", "*")
V1 = '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":%s}'


def policy_text(n: int, seed: int = 7, api_group: str | None = None) -> str:
    """n rules: ~70% per-user, ~20% per-group, ~10% non-resource, plus two for everyone.

    Per-user rules leave apiGroup unset (core group only) unless `api_group` is given.
    """
    rnd = random.Random(seed)
    users, groups = max(1, n // 3), max(1, n // 20)
    lines = [
        V1 % '{"group":"system:authenticated","readonly":true,"nonResourcePath":"/version"}',
        V1 % '{"group":"system:authenticated","readonly":true,"nonResourcePath":"/apis/*"}',
    ]
    for i in range(max(0, n - len(lines))):
        kind = rnd.random()
        ns, res = rnd.choice(NAMESPACES), rnd.choice(RESOURCES)
        readonly = "true" if rnd.random() < 0.5 else "false"
        if kind < 0.7:
            group = f',"apiGroup":"{api_group}"' if api_group is not None else ""
            subject = f'"user":"user{i % users}","namespace":"{ns}","resource":"{res}"'
            spec = f'{{{subject},"readonly":{readonly}{group}}}'
        elif kind < 0.9:
            spec = f'{{"group":"group{i % groups}","namespace":"{ns}","resource":"{res}","apiGroup":"*"}}'
        else:
            spec = f'{{"user":"user{i % users}","nonResourcePath":"/logs/*","readonly":true}}'
        lines.append(V1 % spec)
    return "\n".join(lines[:n]) + "\n"


def request_mix(policy: Policy, count: int, seed: int = 11) -> list[Attributes]:
    rnd = random.Random(seed)
    users = sorted({r.user for r in policy.rules if r.user}) or ["nobody"]
    groups = sorted({r.group for r in policy.rules if r.group.startswith("group")}) or ["group0"]
    mix: list[Attributes] = []
    for i in range(count):
        kind = i % 4
        base = ("system:authenticated",)
        extra: tuple[str, ...] = ()
        if kind == 0:  # a user with rules of their own
            user = rnd.choice(users)
        elif kind == 1:  # a group member
            user, extra = f"member{i}", (rnd.choice(groups),)
        else:  # a miss (unknown user), or a non-resource request
            user = f"stranger{i}"
        groups_of = (*base, *extra)
        if kind == 3:
            mix.append(
                Attributes(
                    user, groups_of, "get", False, path=rnd.choice(["/version", "/apis/apps", "/logs/x"])
                )
            )
        else:
            mix.append(
                Attributes(
                    user,
                    groups_of,
                    rnd.choice(["get", "list", "create", "delete"]),
                    True,
                    namespace=rnd.choice(NAMESPACES[:-1]),
                    resource=rnd.choice(RESOURCES),
                    api_group=rnd.choice(["", "apps"]),
                )
            )
    return mix


@dataclass(frozen=True)
class Timing:
    median_us: float
    p99_us: float
    allowed: int


def measure(decide: Callable[[Attributes], object], requests: Sequence[Attributes], rounds: int) -> Timing:
    samples: list[int] = []
    allowed = 0
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for a in requests:
            start = clock()
            outcome = decide(a)
            samples.append(clock() - start)
            allowed += outcome is not None and outcome is not False
    samples.sort()
    return Timing(
        statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000, allowed // rounds
    )


@dataclass(frozen=True)
class Load:
    wall_ms: float
    cpu_ms: float
    rss_mb: float


def load_in_fresh_process(text: str) -> Load:
    """Load and index a policy file in a new interpreter, as `gatekeeper serve` does at start-up."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "abac.jsonl"
        path.write_text(text)
        done = subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_abac", "--load-only", str(path)],
            capture_output=True, check=True, text=True, cwd=Path(__file__).resolve().parents[2],
        )
    return Load(**json.loads(done.stdout))


def _load_only(path: Path) -> dict[str, float]:
    start, cpu = time.perf_counter(), time.process_time()
    evaluator = load_evaluator(path)
    wall_ms, cpu_ms = (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000
    assert evaluator.rule_count > 0
    return {"wall_ms": wall_ms, "cpu_ms": cpu_ms, "rss_mb": _rss_mb()}


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover - not Linux


def casbin_side(rules: Sequence[Rule]) -> Callable[[Attributes], bool] | None:
    try:
        from tests.bench.casbin_abac import CasbinABAC
    except ImportError:
        return None
    return CasbinABAC(rules).allowed


HEADER = (
    f"{'rules':>8} {'load ms':>8} {'cpu ms':>7} {'RSS MB':>7} {'indexed p50 µs':>15} {'p99 µs':>8} "
    f"{'linear p50 µs':>14} {'p99 µs':>9} {'ratio':>8} {'casbin p50 µs':>14} {'p99 µs':>9} {'ratio':>9} "
    f"{'agree':>6}"
)


def run(sizes: Sequence[int], requests: int, with_casbin: bool = True) -> list[str]:
    rows = [HEADER]
    casbin_missing = False
    for n in sizes:
        text = policy_text(n)
        load = load_in_fresh_process(text)
        evaluator = Evaluator(parse_policy(text.encode(), "bench.jsonl"))
        mix = request_mix(evaluator.policy, requests)
        rules = evaluator.policy.rules
        agree = all(evaluator.first_match(a) == linear_first_match(rules, a) for a in mix[:200])
        linear_budget = max(1, min(len(mix), 2_000_000 // max(n, 1)))  # keep the baselines' runs short
        indexed = measure(evaluator.first_match, mix, rounds=5)
        linear = measure(functools.partial(linear_first_match, rules), mix[:linear_budget], rounds=1)
        casbin_cells = f"{'-':>14} {'-':>9} {'-':>9}"
        casbin = casbin_side(rules) if with_casbin else None
        if casbin is None:
            casbin_missing = with_casbin
        else:
            sample = mix[: max(8, min(len(mix), 200_000 // max(n, 1)))]
            agree = agree and all(casbin(a) == (evaluator.first_match(a) is not None) for a in sample)
            timing = measure(casbin, sample, rounds=1)
            casbin_cells = f"{timing.median_us:>14.1f} {timing.p99_us:>9.1f} {_ratio(timing, indexed):>9}"
        rows.append(
            f"{n:>8} {load.wall_ms:>8.0f} {load.cpu_ms:>7.0f} {load.rss_mb:>7.1f} {indexed.median_us:>15.2f} "
            f"{indexed.p99_us:>8.2f} {linear.median_us:>14.2f} {linear.p99_us:>9.2f} "
            f"{_ratio(linear, indexed):>8} {casbin_cells} {agree!s:>6}"
        )
    if casbin_missing:
        rows.append("casbin: not installed (pip install -e '.[bench]'); its columns are left out")
    return rows


def _ratio(baseline: Timing, indexed: Timing) -> str:
    return f"{baseline.median_us / indexed.median_us:.0f}x" if indexed.median_us else "inf"


SIDES = ("noop", "indexed", "linear")  # --callgrind's runs
CALLGRIND_HEADER = (
    f"{'rules':>8} {'indexed Ir/decision':>20} {'linear Ir/decision':>19} {'ratio':>9} {'decisions':>10}"
)


def run_callgrind(sizes: Sequence[int], requests: int) -> list[str]:
    """Instructions per decision for the indexed evaluator and the linear scan, net of the loop."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--callgrind: valgrind is not installed")
    rows = [CALLGRIND_HEADER]
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            counts = {side: _callgrind_count(valgrind, Path(tmp), side, n, requests) for side in SIDES}
            loop = counts["noop"][0] / counts["noop"][1]
            indexed, linear = (counts[side][0] / counts[side][1] - loop for side in ("indexed", "linear"))
            rows.append(
                f"{n:>8} {indexed:>20,.0f} {linear:>19,.0f} {linear / indexed:>8.0f}x "
                f"{counts['indexed'][1]:>10}"
            )
    return rows


def _callgrind_count(valgrind: str, tmp: Path, side: str, n: int, requests: int) -> tuple[int, int]:
    """(instructions counted, decisions made) of one side in a child under callgrind."""
    decisions = _decisions(side, n, requests)
    command = [
        valgrind, "--tool=callgrind", "--toggle-collect=functools_reduce",
        f"--callgrind-out-file={tmp / f'callgrind.{side}.{n}'}",
        sys.executable, "-m", "tests.bench.bench_abac", "--callgrind-child", side,
        "--sizes", str(n), "--requests", str(decisions),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts in every run
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, cwd=Path(__file__).resolve().parents[2]
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None or int(found.group(1)) == 0:
        raise SystemExit(f"--callgrind: the {side} run failed or counted nothing:\n{done.stderr[-2000:]}")
    return int(found.group(1)), decisions


def _decisions(side: str, n: int, requests: int) -> int:
    """The linear scan decides fewer requests: each one costs ~1,500 instructions per rule."""
    return max(1, min(requests, 400_000 // max(n, 1))) if side == "linear" else requests


def _callgrind_child(side: str, n: int, decisions: int) -> None:
    evaluator = Evaluator(parse_policy(policy_text(n).encode(), "bench.jsonl"))
    mix = request_mix(evaluator.policy, decisions)
    decide: Callable[[Attributes], object] = {
        "noop": _no_decision,
        "indexed": evaluator.first_match,
        "linear": functools.partial(linear_first_match, evaluator.policy.rules),
    }[side]
    functools.reduce(_decide_one, mix, decide)  # the only call of reduce: what callgrind counts


def _no_decision(a: Attributes) -> None:
    return None


def _decide_one(decide: Callable[[Attributes], object], a: Attributes) -> Callable[[Attributes], object]:
    decide(a)
    return decide


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1_000, 10_000, 100_000])
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--no-casbin", action="store_true", help="leave pycasbin out")
    parser.add_argument("--callgrind", action="store_true", help="instructions per decision (valgrind)")
    parser.add_argument("--load-only", type=Path, help=argparse.SUPPRESS)  # the fresh load process
    parser.add_argument("--callgrind-child", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_only:
        print(json.dumps(_load_only(args.load_only)))
        return
    if args.callgrind_child:
        _callgrind_child(args.callgrind_child, args.sizes[0], args.requests)
        return
    if args.callgrind:
        for row in run_callgrind(args.sizes, args.requests):
            print(row)
        return
    for row in run(args.sizes, args.requests, with_casbin=not args.no_casbin):
        print(row)


if __name__ == "__main__":
    main()
