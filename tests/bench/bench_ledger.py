"""CPU per call of the SQLite store's request path, in one process: a quota charge, a request's
reads (a snapshot, the nine reads a pod's /admit makes, the ledger's usage), and a whole /admit
of bench_http's pod through the four plugins (chain.admit on a snapshot, no HTTP).

    python -m tests.bench.bench_ledger                       # 15,000 calls, 3 runs
    python -m tests.bench.bench_ledger --calls 50000 --runs 5

CPU time (time.process_time), not wall time: on a shared machine the disk and the other
processes move wall time far more than the code does. Each run is a fresh store in a temporary
folder; every charge is a new request uid, as on a server. No assertion on time: the numbers
are printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from gatekeeper.admission.chain import build_chain
from gatekeeper.admission.quota.ledger import NamespaceUsage, RequestKey
from gatekeeper.admission.state import Store
from gatekeeper.api.admission import parse_admission_review
from gatekeeper.backends.factory import open_store
from gatekeeper.backends.manifests import ManifestSync
from tests.bench.bench_http import STATE, admission_body

PLUGINS = ["NamespaceLifecycle", "LimitRanger", "ServiceAccount", "ResourceQuota"]

SEEDS = {"compute": {"pods": "0"}}
NAMESPACE = {
    "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}, "status": {"phase": "Active"}
}


def add_pod(usage: NamespaceUsage) -> NamespaceUsage:
    return {"compute": {"pods": str(int(usage["compute"].get("pods", "0")) + 1)}}


def cpu_per_call(calls: int, call: object) -> float:
    assert callable(call)
    started = time.process_time()
    for i in range(calls):
        call(i)
    return (time.process_time() - started) / calls * 1e6


def request_reads(store: Store) -> None:
    snapshot = store.snapshot()
    for _ in range(3):
        snapshot.get("namespaces", "", "team")
        snapshot.list("limitranges", "team")
        snapshot.get("serviceaccounts", "team", "default")
    store.quota_ledger.usage("team", SEEDS)


def admissions(folder: Path, calls: int) -> float:
    """CPU per chain.admit of bench_http's pod CREATE, each with a uid of its own (one charge each)."""
    (folder / "state.yaml").write_text(STATE)
    store = open_store(f"sqlite:///{folder / 'admit.db'}")
    try:
        ManifestSync(store, [folder / "state.yaml"]).load()
        chain = build_chain(PLUGINS)
        _, request = parse_admission_review(orjson.loads(admission_body()))
        reviews = [dataclasses.replace(request, uid=f"u-{i}") for i in range(calls + 200)]
        assert all(chain.admit(review, store.snapshot()).allowed for review in reviews[:200])
        return cpu_per_call(calls, lambda i: chain.admit(reviews[200 + i], store.snapshot()))
    finally:
        store.close()


def one_run(calls: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 's.db'}")
        try:
            store.put(NAMESPACE)
            ledger = store.quota_ledger
            cpu_per_call(200, lambda i: ledger.apply("team", RequestKey(f"warm-{i}"), SEEDS, add_pod))
            charge = cpu_per_call(calls, lambda i: ledger.apply("team", RequestKey(f"u-{i}"), SEEDS, add_pod))
            reads = cpu_per_call(calls, lambda _i: request_reads(store))
        finally:
            store.close()
        return charge, reads, admissions(Path(tmp), calls // 3)


def run(calls: int, runs: int) -> list[str]:
    rows = [f"{'run':>3} {'charge µs':>10} {'reads µs':>9} {'admit µs':>9}"]
    for index in range(runs):
        charge, reads, admit = one_run(calls)
        rows.append(f"{index + 1:>3} {charge:>10.1f} {reads:>9.1f} {admit:>9.1f}")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=15_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    for row in run(args.calls, args.runs):
        print(row, flush=True)


if __name__ == "__main__":
    main()
