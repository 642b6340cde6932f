"""ABAC decisions per second: the indexed evaluator against Kubernetes' linear scan, in one run.

    python -m tests.bench.bench_abac                 # 10, 1,000 and 10,000 rules
    python -m tests.bench.bench_abac --sizes 100000  # any sizes

Both sides evaluate the same compiled rules on the same request mix (user hits, group hits,
misses, non-resource paths); each decision is timed on its own, and the table reports the median
and p99 per decision and the ratio of the medians. No assertion on time: the numbers are printed.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.evaluator import Evaluator, linear_first_match
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
    mix = []
    for i in range(count):
        kind = i % 4
        base = ("system:authenticated",)
        if kind == 0:  # a user with rules of their own
            user, extra = rnd.choice(users), ()
        elif kind == 1:  # a group member
            user, extra = f"member{i}", (rnd.choice(groups),)
        else:  # a miss (unknown user), or a non-resource request
            user, extra = f"stranger{i}", ()
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


def measure(
    decide: Callable[[Attributes], Rule | None], requests: Sequence[Attributes], rounds: int
) -> Timing:
    samples: list[int] = []
    allowed = 0
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for a in requests:
            start = clock()
            rule = decide(a)
            samples.append(clock() - start)
            allowed += rule is not None
    samples.sort()
    return Timing(
        statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000, allowed // rounds
    )


def run(sizes: Sequence[int], requests: int) -> list[str]:
    rows = [
        f"{'rules':>8} {'load ms':>8} {'indexed p50 µs':>15} {'p99 µs':>8} "
        f"{'linear p50 µs':>14} {'p99 µs':>9} {'ratio':>8} {'agree':>6}"
    ]
    for n in sizes:
        text = policy_text(n).encode()
        start = time.perf_counter()
        evaluator = Evaluator(parse_policy(text, "bench.jsonl"))
        load_ms = (time.perf_counter() - start) * 1000
        mix = request_mix(evaluator.policy, requests)
        rules = evaluator.policy.rules
        agree = all(evaluator.first_match(a) == linear_first_match(rules, a) for a in mix[:200])
        linear_budget = max(1, min(len(mix), 2_000_000 // max(n, 1)))  # keep the baseline's run short
        indexed = measure(evaluator.first_match, mix, rounds=5)
        linear = measure(functools.partial(linear_first_match, rules), mix[:linear_budget], rounds=1)
        ratio = linear.median_us / indexed.median_us if indexed.median_us else float("inf")
        rows.append(
            f"{n:>8} {load_ms:>8.1f} {indexed.median_us:>15.2f} {indexed.p99_us:>8.2f} "
            f"{linear.median_us:>14.2f} {linear.p99_us:>9.2f} {ratio:>7.0f}x {agree!s:>6}"
        )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1_000, 10_000])
    parser.add_argument("--requests", type=int, default=4_000)
    args = parser.parse_args(argv)
    for row in run(args.sizes, args.requests):
        print(row)


if __name__ == "__main__":
    main()
