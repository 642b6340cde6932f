"""The admission chain in-process, on bench_http's pod and state: CPU µs per phase call.

    python -m tests.bench.bench_admission               # 5 rounds of 5,000 calls per phase
    python -m tests.bench.bench_admission --calls 500   # quicker

No HTTP, no TLS, a memory store: what the plugins and the chain cost on their own (the /admit
row of bench_http adds the server around them and a SQLite ledger). The minimum over the rounds
is printed (process time, so other load on the machine hardly changes it). No assertion on time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import orjson
import yaml

from gatekeeper.admission.chain import build_chain
from gatekeeper.admission.outcome import Outcome
from gatekeeper.admission.request import AdmissionRequest
from gatekeeper.admission.state import Store
from gatekeeper.api.admission import parse_admission_review
from gatekeeper.backends.memory import MemoryStore
from tests.bench.bench_http import STATE, admission_body

PLUGINS = ("NamespaceLifecycle", "LimitRanger", "ServiceAccount", "ResourceQuota")


def per_call_us(phase: Callable[[AdmissionRequest, Store], Outcome], request: AdmissionRequest,
                store: Store, calls: int, rounds: int) -> float:
    for _ in range(max(calls // 10, 1)):  # warm up
        phase(request, store)
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            phase(request, store)
        best = min(best, (time.process_time() - start) / calls * 1e6)
    return best


def run(calls: int = 5_000, rounds: int = 5) -> list[str]:
    chain = build_chain(PLUGINS)
    doc = orjson.loads(admission_body().replace(b"__UID__", b"bench"))
    rows = [f"{'phase':<10} {'µs/call':>8}"]
    for name in ("mutate", "validate"):
        store = MemoryStore(list(yaml.safe_load_all(STATE)))
        _version, request = parse_admission_review(doc)
        if name == "validate":  # what /validate sees: the pod as /mutate left it
            mutated = chain.mutate(request, store).object
            mutated_doc = {**doc, "request": {**doc["request"], "object": mutated}}
            _version, request = parse_admission_review(mutated_doc)
        phase = chain.mutate if name == "mutate" else chain.validate
        rows.append(f"{name:<10} {per_call_us(phase, request, store, calls, rounds):>8.1f}")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    for row in run(args.calls, args.rounds):
        print(row)


if __name__ == "__main__":
    main()
