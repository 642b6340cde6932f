"""bench_cluster keeps working: a tiny run on the e2e's control plane, checking shape, never time."""

from __future__ import annotations

from tests.bench import bench_cluster
from tests.e2e.cluster import Cluster


def test_cluster_bench_runs_both_wirings_without_failures(cluster: Cluster) -> None:
    rows = bench_cluster.run_on(cluster, policy_lines=50, rate=10, seconds=1)
    cells = [row.split() for row in rows[1:]]
    assert [(c[0], c[1]) for c in cells] == [
        ("get", "pod"),
        ("get", "pod"),
        ("list", "pods"),
        ("list", "pods"),
        ("create", "pod"),
        ("create", "pod"),
    ]
    assert [c[2] for c in cells] == ["gatekeeper", "in-tree"] * 3
    assert all(c[3] == "10" and c[4] == "0" for c in cells)  # every request sent, none failed
