"""gatekeeper lint on large policies, side by side with its baselines, in one run.

    python -m tests.bench.bench_lint                  # 1,000, 10,000 and 100,000 lines
    python -m tests.bench.bench_lint --sizes 2000

Baselines: loading the same file (what kube-apiserver itself must do), and shadowing detection by
comparing all pairs of rules (what the index avoids; only run where it finishes in seconds).
CPU seconds per run (process_time), median of --repeat runs.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gatekeeper.authz.policy import load_policy_file
from gatekeeper.lint.abac import lint_policy
from gatekeeper.lint.coverage import covers, grant, shadowed
from tests.bench.bench_abac import policy_text

ALL_PAIRS_LIMIT = 3_000


def cpu_seconds(work: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.process_time()
        work()
        samples.append(time.process_time() - start)
    return statistics.median(samples)


def all_pairs(path: Path) -> int:
    rules = load_policy_file(path).rules
    return sum(1 for a in rules if any(b is not a and grant(b) != grant(a) and covers(b, a) for b in rules))


def measure(path: Path, n: int, label: str, repeat: int) -> str:
    load = cpu_seconds(functools.partial(load_policy_file, path), repeat)
    lint = cpu_seconds(functools.partial(lint_policy, path), repeat)
    findings = len(lint_policy(path))
    rules = load_policy_file(path).rules
    index = cpu_seconds(lambda: list(shadowed(rules)), repeat)
    pairs = f"{cpu_seconds(functools.partial(all_pairs, path), 1):.2f}" if n <= ALL_PAIRS_LIMIT else "-"
    ratio = lint / load
    return (
        f"{n:>8} {label:>8} {load:>7.2f} {lint:>7.2f} {ratio:>9.1f}x {findings:>9} {pairs:>12} {index:>8.2f}"
    )


def run(sizes: Sequence[int], repeat: int) -> list[str]:
    """Two policies per size: "careful" names every apiGroup; "noisy" leaves 70% unset (a warning each)."""
    header = ("lines", "policy", "load s", "lint s", "lint/load", "findings", "all-pairs s", "index s")
    rows = [
        f"{header[0]:>8} {header[1]:>8} {header[2]:>7} {header[3]:>7} {header[4]:>10} "
        f"{header[5]:>9} {header[6]:>12} {header[7]:>8}"
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for label, api_group in (("careful", ""), ("noisy", None)):
                path = Path(tmp) / f"policy-{n}-{label}.jsonl"
                path.write_text(policy_text(n, api_group=api_group))
                rows.append(measure(path, n, label, repeat))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for row in run(args.sizes, args.repeat):
        print(row)


if __name__ == "__main__":
    main()
