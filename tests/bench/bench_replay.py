"""`gatekeeper replay` over a generated kube-apiserver audit log, streaming.

The log is what an audit policy at level Metadata writes: a RequestReceived and a ResponseComplete
event per request, from 200 users over 50 namespaces (mostly their own), resource and
non-resource requests. The
baseline in the same run is the floor any replay pays: reading the lines and decoding the JSON.
Peak RSS is read at each size, so a flat line means the replay streams.

    python -m tests.bench.bench_replay --events 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from gatekeeper.api.audit_events import parse_event
from gatekeeper.authz.evaluator import Evaluator, load_evaluator

RESOURCES = [("", "pods"), ("", "services"), ("apps", "deployments"), ("", "configmaps"), ("batch", "jobs")]
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


def write_policy(path: Path, users: int, namespaces: int) -> None:
    """Each user's grants in one namespace: a line per (user, resource), then /version for all."""
    lines = []
    for u in range(users):
        for group, res in RESOURCES:
            spec = {
                "user": f"user-{u}",
                "namespace": f"ns-{u % namespaces}",
                "resource": res,
                "apiGroup": group or "",
                "readonly": u % 3 == 0,
            }
            lines.append(
                json.dumps(
                    {"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": spec}
                )
            )
    lines.append(
        '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
        '"spec":{"group":"system:authenticated","readonly":true,"nonResourcePath":"*"}}'
    )
    path.write_text("\n".join(lines) + "\n")


def write_log(path: Path, events: int, seed: int, recorded: Evaluator) -> None:
    """A request is two events; its recorded decision is `recorded`'s, as if it were the cluster's."""
    rng = random.Random(seed)
    with path.open("w") as out:
        for i in range(events // 2):
            u = rng.randrange(200)
            user = f"user-{u}"
            common = {
                "kind": "Event",
                "apiVersion": "audit.k8s.io/v1",
                "level": "Metadata",
                "auditID": f"{seed:08x}-{i:012x}",
                "verb": rng.choice(VERBS),
                "user": {"username": user, "groups": ["team", "system:authenticated"]},
                "sourceIPs": ["10.0.0.1"],
                "userAgent": "kubectl/v1.37.2",
            }
            if rng.random() < 0.1:
                common.update(verb="get", requestURI="/version")
            else:
                group, res = rng.choice(RESOURCES)
                ns = f"ns-{u % 50 if rng.random() < 0.8 else rng.randrange(50)}"  # mostly their own
                common["objectRef"] = {
                    "resource": res,
                    "namespace": ns,
                    "apiGroup": group,
                    "apiVersion": "v1",
                }
                common["requestURI"] = f"/apis/{group or 'core'}/v1/namespaces/{ns}/{res}"
            out.write(json.dumps({**common, "stage": "RequestReceived"}) + "\n")
            completed = {**common, "stage": "ResponseComplete"}
            allowed = recorded.authorize(parse_event(completed).attributes).allowed
            completed["annotations"] = {"authorization.k8s.io/decision": "allow" if allowed else "forbid"}
            completed["responseStatus"] = {"metadata": {}, "code": 200 if allowed else 403}
            out.write(json.dumps(completed) + "\n")


def decode_only(path: Path) -> float:
    """CPU seconds to read and decode every line: the floor of any replay."""
    start = time.process_time()
    with path.open("rb") as stream:
        for line in stream:
            orjson.loads(line)
    return time.process_time() - start


@dataclass(frozen=True)
class Run:
    wall: float  # seconds, the interpreter's start and imports left out
    cpu: float
    rss_kib: int  # peak
    decided: int
    lost: int
    gained: int


def replay(path: Path, *flags: str) -> Run:
    """One `gatekeeper replay --format json` in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), *flags], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"replay failed ({proc.returncode}): {proc.stderr}")
    wall, cpu, rss, decided, lost, gained = proc.stdout.split()
    return Run(float(wall), float(cpu), int(rss), int(decided), int(lost), int(gained))


_CHILD = """
import contextlib, io, json, resource, sys, time
from gatekeeper.cli import main
out = io.StringIO()
wall, cpu = time.perf_counter(), time.process_time()
with contextlib.redirect_stdout(out):
    code = main(["replay", "--format", "json", *sys.argv[2:], sys.argv[1]])
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
if code not in (0, 1):
    sys.exit(code)
r = json.loads(out.getvalue())
print(wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, r["decided"], r["lost"], r["gained"])
"""


def run(events: int, seed: int) -> list[str]:
    """The table's rows, header first. Both modes must find the same changes: the log's recorded
    decisions are the baseline policy's."""
    rows = [
        "| events | baseline | decode only, CPU | replay, CPU | replay, wall | events per CPU second "
        "| CPU ratio to decode only | peak RSS | decided | lost | gained |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        old, new = Path(tmp) / "old.jsonl", Path(tmp) / "new.jsonl"
        write_policy(old, 200, 50)
        lines = old.read_text().splitlines(keepends=True)
        new.write_text("".join(line for i, line in enumerate(lines) if i % 20 != 7))  # 5 % fewer grants
        modes = {
            "recorded decisions": ("--authorization-policy-file", str(new)),
            "baseline policy": ("--authorization-policy-file", str(new), "--baseline-policy-file", str(old)),
        }
        for size in sorted({max(events // 10, 2), events}):
            log = Path(tmp) / f"audit-{size}.log"
            write_log(log, size, seed, load_evaluator(old))
            base = decode_only(log)
            for mode, flags in modes.items():
                r = replay(log, *flags)
                times = f"{base:.2f} s | {r.cpu:.2f} s | {r.wall:.2f} s"
                cpu = f"{times} | {size / r.cpu:,.0f} | {r.cpu / base:.1f}x"
                counts = f"{r.rss_kib / 1024:.0f} MB | {r.decided} | {r.lost} | {r.gained}"
                rows.append(f"| {size:,} | {mode} | {cpu} | {counts} |")
            log.unlink()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print("policy: 1,001 lines, the new one without every 20th; half the events are RequestReceived")
    print("\n".join(run(args.events, args.seed)))


if __name__ == "__main__":
    main()
