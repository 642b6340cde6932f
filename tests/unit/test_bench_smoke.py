"""The benchmarks keep working: a tiny run of each, checking shape and agreement, never time."""

from __future__ import annotations

from tests.bench import bench_abac


def test_abac_bench_runs_and_both_sides_agree() -> None:
    rows = bench_abac.run(sizes=[10, 200], requests=40)
    assert rows[0].split()[0] == "rules"
    assert [row.split()[0] for row in rows[1:]] == ["10", "200"]
    assert all(row.split()[-1] == "True" for row in rows[1:])  # indexed == linear on every request


def test_lint_bench_runs() -> None:
    from tests.bench import bench_lint

    rows = bench_lint.run(sizes=[50], repeat=1)
    assert [row.split()[:2] for row in rows[1:]] == [["50", "careful"], ["50", "noisy"]]
