"""The benchmarks keep working: a tiny run of each, checking shape and agreement, never time."""

from __future__ import annotations

import pytest

from tests.bench import bench_abac


def test_abac_bench_runs_and_both_sides_agree() -> None:
    rows = bench_abac.run(sizes=[10, 200], requests=40, with_casbin=False)
    assert rows[0].split()[0] == "rules"
    assert [row.split()[0] for row in rows[1:]] == ["10", "200"]
    assert all(row.split()[-1] == "True" for row in rows[1:])  # indexed == linear on every request


def test_abac_bench_casbin_agrees_with_the_evaluator() -> None:
    pytest.importorskip("casbin")
    rows = bench_abac.run(sizes=[10, 300], requests=40)
    assert all(row.split()[-1] == "True" for row in rows[1:])  # indexed == linear == casbin
    assert all("x" in row.split()[-2] for row in rows[1:])  # the casbin ratio column is filled


def test_http_bench_runs_every_endpoint_without_errors() -> None:
    from tests.bench import bench_http

    rows = bench_http.run(bench_http.parse_args(["--smoke"]))
    blank = rows.index("")
    cells = [row.split() for row in rows[1:blank]]
    assert sorted({c[0] for c in cells}) == ["/admit", "/authorize", "empty", "fastapi-empty"]
    assert all(c[-1] == "0" and c[-2] == "0" for c in cells)  # no connection errors, every answer 2xx
    assert any(c[:2] == ["/admit", "1%"] for c in cells)  # a share of the empty endpoint, resolved in the run
    verdicts = {row[:42].strip(): row[52:].strip() for row in rows[blank + 2 :]}  # the loads the smoke ran
    assert list(verdicts) == [bench_http.TARGETS[i][0] for i in (0, 2, 3)]
    assert set(verdicts.values()) <= {"met", "not met"}


def test_store_bench_runs_on_every_store() -> None:
    from tests.bench import bench_store
    from tests.support.etcd import require_etcd

    require_etcd()  # skips without etcd (fails under CI, which installs it)
    rows = bench_store.run(requests=10, concurrency=2)
    assert [" ".join(row.split()[:2]) for row in rows[1:]] == ["sqlite 10", "etcd, 1", "etcd, 3"]


def test_ledger_bench_runs() -> None:
    from tests.bench import bench_ledger

    rows = bench_ledger.run(calls=30, runs=1)
    assert [row.split()[0] for row in rows] == ["run", "1"] and len(rows[1].split()) == 4


def test_lint_bench_runs() -> None:
    from tests.bench import bench_lint

    rows = bench_lint.run(sizes=[50], repeat=1)
    assert [row.split()[:2] for row in rows[1:]] == [["50", "careful"], ["50", "noisy"]]


def test_observe_bench_runs() -> None:
    from tests.bench import bench_observe

    rows = bench_observe.run(calls=200)
    names = ["metrics.record", "observe.authorization,", "observe.authorization,", "ASGI"]
    assert [row.split()[0] for row in rows] == names


def test_replay_bench_runs_and_both_baselines_find_the_same_changes() -> None:
    from tests.bench import bench_replay

    rows = bench_replay.run(events=4000, seed=3)
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]
    assert [c[1] for c in cells] == ["recorded decisions", "baseline policy"] * 2
    for recorded, baseline in zip(cells[::2], cells[1::2], strict=True):
        assert recorded[-3:] == baseline[-3:]  # decided, lost, gained
    assert int(cells[-1][-2]) > 0  # the new policy lost grants the log used


def test_shadow_bench_runs_every_server_and_the_wide_shadow_disagrees() -> None:
    from tests.bench import bench_shadow

    rows = bench_shadow.run(bench_shadow.parse_args(["--smoke"]))
    http, in_process = rows[1 : rows.index("")], rows[rows.index("") + 2 :]
    cells = {row[:18].strip(): row[18:].split() for row in http}
    assert list(cells) == list(bench_shadow.SERVERS)
    assert all(c[-1] == "0" and c[-2] == "0" for c in cells.values())  # no errors, every answer 2xx
    assert len(cells["no shadow"]) == len(cells["no shadow, audit"]) == 7  # no +CPU, no disagree
    assert float(cells["wide shadow, audit"][-4]) > 50  # the policy allows a quarter of the mix
    handler = {row[:20].strip(): row[20:].split() for row in in_process}
    assert list(handler) == list(bench_shadow.SERVERS)
    assert all(float(c[0]) > 0 for c in handler.values())


def test_audit_bench_runs_and_finds_exactly_the_known_violations() -> None:
    from tests.bench import bench_audit

    rows = bench_audit.run(sizes=[600])
    cells = [row.split() for row in rows[1:]]
    assert [" ".join(c[:-7]) for c in cells] == ["json.load", "decode", "gatekeeper audit"]
    assert all(c[-1] == "True" for c in cells)  # every object read; the audit's findings are the dump's


def test_admission_bench_runs_both_phases() -> None:
    from tests.bench import bench_admission

    rows = bench_admission.run(calls=5, rounds=1)
    assert [row.split()[0] for row in rows] == ["phase", "mutate", "validate"]


def test_abac_bench_counts_instructions_per_decision_under_callgrind() -> None:
    import shutil

    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed")
    rows = bench_abac.run_callgrind(sizes=[50], requests=20)
    assert rows[0].split()[0] == "rules"
    cells = rows[1].split()
    assert cells[0] == "50" and cells[-1] == "20"  # rules, indexed decisions
    indexed, linear = (float(c.replace(",", "")) for c in cells[1:3])
    assert 0 < indexed < linear  # counted, the loop's own cost taken off, the scan costs more


def test_reload_bench_reloads_inside_the_window_without_errors() -> None:
    from tests.bench import bench_reload

    rows = bench_reload.run(bench_reload.parse_args(["--smoke"]))
    blank = rows.index("")
    cells = {row[:10].strip(): row[10:].split() for row in rows[1:blank]}
    assert list(cells) == ["no reload", "reload"]
    assert all(c[-3] == "0" and c[-2] == "0" for c in cells.values())  # every answer 2xx, no errors
    assert cells["no reload"][-1] == "-" and float(cells["reload"][-1]) >= 0  # "none", "(2 reloads)" fail
    steps = rows[blank + 2].split()
    assert steps[3] == "200" and int(steps[-2]) > 0  # the in-process steps ran on the same policy size


def test_servers_bench_runs_every_server_and_app_without_errors() -> None:
    pytest.importorskip("granian")
    pytest.importorskip("hypercorn")
    from tests.bench import bench_servers

    rows = bench_servers.run(bench_servers.parse_args(["--smoke"]))
    measured, tls = rows[1 : rows.index("")], rows[rows.index("") + 2 :]
    cells = [row.split() for row in measured]
    cases = [case for instance in bench_servers.instances() for case in bench_servers.cases_of(*instance)]
    every = [(case.server, case.label, case.auth) for case in cases]
    assert [tuple(c[:3]) for c in cells] == every * 2  # saturation, then the fixed rate
    assert all(c[-1] == "0" and c[-2] == "0" for c in cells)  # no connection errors, every answer 2xx
    assert [row.split()[0] for row in tls] == list(bench_servers.SERVERS)
    assert all(row.split()[1] == "TLSv1.3" for row in tls)  # the same TLS version everywhere
    assert tls[0].split()[3] == "yes"  # uvicorn with gatekeeper's protocol: x509 authn works
