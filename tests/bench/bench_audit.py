"""`gatekeeper audit` of a generated cluster dump (tests/support/cluster_dump.py), as kubectl prints
it (`-o json`, indented), against two baselines in the same run:

* `json.load`: what reading the dump whole costs (time and memory), the floor of a naive tool;
* `decode`: gatekeeper's streaming reader alone, every item decoded and spooled, no checks.

Each case runs in a process of its own, which reports its own wall time, CPU time and peak RSS
(VmHWM).
The dump's findings are known by construction; the audit must report exactly that many.

    python -m tests.bench.bench_audit --objects 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.cluster_dump import generate

OBJECTS_PER_NAMESPACE = 93  # 85 pods, their quota and 7 other objects
PODS_PER_NAMESPACE = 85

# Peak RSS is the process's own VmHWM: ru_maxrss would carry the generating parent's peak across
# fork and exec.
MEASURE = """
import re, sys, time
started, cpu = time.perf_counter(), time.process_time()
{body}
wall, cpu = time.perf_counter() - started, time.process_time() - cpu
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(f"{{wall:.2f}} {{cpu:.2f}} {{peak / 1024:.0f}} {{found}}", file=sys.stderr)
"""
CASES = {
    "json.load": "import json\nfound = len(json.load(open(sys.argv[1]))['items'])",
    "decode": "from gatekeeper.inspect.sources import DumpSource\n"
    "found = sum(1 for _ in DumpSource(sys.argv[1]).context_objects())",
    "gatekeeper audit": "import contextlib, io, json\n"
    "from gatekeeper.cli import main\n"
    "out = io.StringIO()\n"
    "with contextlib.redirect_stdout(out):\n"
    "    main(['audit', sys.argv[1], '--format', 'json'])\n"
    "found = len(json.loads(out.getvalue())['findings'])",
}


def measure(case: str, dump: Path) -> tuple[float, float, float, int]:
    script = MEASURE.format(body=CASES[case])
    done = subprocess.run(
        [sys.executable, "-c", script, str(dump)], capture_output=True, text=True, check=True, timeout=600
    )
    wall, cpu, rss, found = done.stderr.strip().splitlines()[-1].split()
    return float(wall), float(cpu), float(rss), int(found)


def run(sizes: list[int], seed: int = 1) -> list[str]:
    """A row per (size, case); `ok`: the baselines read every object, the audit found exactly the
    dump's known findings."""
    rows = [
        f"{'case':<18}{'objects':>9}{'dump MB':>9}{'wall s':>8}{'cpu s':>7}{'RSS MB':>8}{'found':>8}{'ok':>6}"
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            dump = generate(max(1, size // OBJECTS_PER_NAMESPACE), PODS_PER_NAMESPACE, seed=seed)
            path = Path(tmp) / f"dump-{size}.json"
            path.write_text(json.dumps(dump.document(), indent=4))
            objects, findings = len(dump.items), len(dump.expected)
            del dump
            megabytes = path.stat().st_size / 1e6
            for case in CASES:
                wall, cpu, rss, found = measure(case, path)
                ok = found == (findings if case == "gatekeeper audit" else objects)
                rows.append(
                    f"{case:<18}{objects:>9}{megabytes:>9.0f}{wall:>8.2f}{cpu:>7.2f}{rss:>8.0f}{found:>8}{ok!s:>6}"
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, action="append", help="dump size (repeatable)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for row in run(args.objects or [10_000, 100_000], args.seed):
        print(row)


if __name__ == "__main__":
    main()
