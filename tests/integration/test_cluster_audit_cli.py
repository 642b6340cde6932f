"""`gatekeeper audit` on generated cluster dumps whose violations are known by construction
(tests/support/cluster_dump.py): exactly those findings, in every input and output format, with
lint's exit codes, and never a Secret's data. The e2e suite audits a real kube-apiserver."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster_dump import GONE, SECRET_VALUE, Dump, generate


def audit(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "audit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def write(tmp_path: Path, dump: Dump, name: str = "dump.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(dump.document(), indent=4))  # as kubectl -o json prints it
    return path


def found(stdout: str) -> list[tuple[str, str, str]]:
    return sorted((f["rule"], f["namespace"], f["name"]) for f in json.loads(stdout)["findings"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_generated_dump_gives_exactly_its_known_violations(tmp_path: Path, seed: int) -> None:
    dump = generate(namespaces=23, pods_per_namespace=12, seed=seed)
    done = audit(str(write(tmp_path, dump)), "--format", "json")
    assert done.returncode == 1, done.stderr
    assert found(done.stdout) == sorted(dump.expected)
    assert json.loads(done.stdout)["objects"] == len(dump.items)
    rules = {rule for rule, _ns, _name in dump.expected}
    assert rules == {
        "limitrange-violation",
        "serviceaccount-missing",
        "secret-not-mountable",
        "namespace-terminating",
        "namespace-missing",
        "quota-drift",
        "quota-exceeded",
    }  # the generator exercised every rule


def test_stdin_json_lines_and_yaml_give_the_same_findings(tmp_path: Path) -> None:
    dump = generate(namespaces=12, pods_per_namespace=6, seed=4)
    lines = "".join(json.dumps(item) + "\n" for item in dump.items)
    docs = yaml.safe_dump_all(dump.items)
    for args, stdin in (
        (["-"], json.dumps(dump.document())),
        (["-"], lines),
        (["-"], docs),
        ([str(write(tmp_path, dump))], None),
    ):
        done = audit(*args, "--format", "json", stdin=stdin)
        assert done.returncode == 1, done.stderr
        assert found(done.stdout) == sorted(dump.expected)


def test_a_clean_dump_exits_zero_and_warnings_alone_do_not_fail(tmp_path: Path) -> None:
    dump = generate(namespaces=3, pods_per_namespace=0, seed=1, gone_pods=0)
    done = audit(str(write(tmp_path, dump)))
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert "audited 24 objects: 0 errors, 0 warnings" in done.stderr
    drifted = generate(namespaces=4, pods_per_namespace=3, gone_pods=0, kinds=("good",))  # ns-3's drifted
    done = audit(str(write(tmp_path, drifted, "drift.json")))
    assert done.returncode == 0, done.stderr
    assert "warning: resourcequota ns-3/compute: ResourceQuota: status.used drifted" in done.stdout


def test_secret_data_never_reaches_any_output(tmp_path: Path) -> None:
    path = write(tmp_path, generate(namespaces=11, pods_per_namespace=5, seed=5))
    for fmt in ("text", "json", "sarif", "policyreport"):
        done = audit(str(path), "--format", fmt)
        assert done.returncode == 1, done.stderr
        assert SECRET_VALUE not in done.stdout + done.stderr


def test_policy_reports_per_namespace_and_for_the_cluster(tmp_path: Path) -> None:
    dump = generate(namespaces=12, pods_per_namespace=8, seed=6)
    done = audit(str(write(tmp_path, dump)), "--format", "policyreport")
    assert done.returncode == 1, done.stderr
    reports = list(yaml.safe_load_all(done.stdout))
    assert {r["apiVersion"] for r in reports} == {"wgpolicyk8s.io/v1alpha2"}
    cluster = [r for r in reports if r["kind"] == "ClusterPolicyReport"]
    namespaced = [r for r in reports if r["kind"] == "PolicyReport"]
    assert len(cluster) == 1 and "namespace" not in cluster[0]["metadata"]
    assert {res["namespace"] for r in cluster[0]["results"] for res in r["resources"]} == {GONE}
    rows = [
        (r["rule"], res["namespace"], res["name"])
        for report in reports
        for r in report["results"]
        for res in r["resources"]
    ]
    assert sorted(rows) == sorted(dump.expected)
    for report in namespaced:
        ns = report["metadata"]["namespace"]
        assert all(res["namespace"] == ns for r in report["results"] for res in r["resources"])
        results = [r["result"] for r in report["results"]]
        assert report["summary"]["fail"] == results.count("fail")
        assert report["summary"]["warn"] == results.count("warn")
        assert {r["source"] for r in report["results"]} == {"gatekeeper"}


def test_output_dir_writes_one_file_per_report(tmp_path: Path) -> None:
    dump = generate(namespaces=10, pods_per_namespace=6, seed=7)
    out = tmp_path / "reports"
    done = audit(str(write(tmp_path, dump)), "--format", "policyreport", "--output-dir", str(out))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    namespaces = {ns for _rule, ns, _name in dump.expected if ns != GONE}
    expected = {f"policyreport-{ns}.yaml" for ns in namespaces} | {"clusterpolicyreport.yaml"}
    assert {p.name for p in out.iterdir()} == expected
    report = yaml.safe_load((out / "clusterpolicyreport.yaml").read_text())
    assert report["kind"] == "ClusterPolicyReport"


def test_sarif_names_each_rule_and_object(tmp_path: Path) -> None:
    dump = generate(namespaces=11, pods_per_namespace=6, seed=8)
    done = audit(str(write(tmp_path, dump)), "--format", "sarif")
    assert done.returncode == 1, done.stderr
    run: dict[str, Any] = json.loads(done.stdout)["runs"][0]
    assert run["tool"]["driver"]["name"] == "gatekeeper audit"
    declared = {r["id"] for r in run["tool"]["driver"]["rules"]}
    results = run["results"]
    assert len(results) == len(dump.expected)
    assert {r["ruleId"] for r in results} <= declared
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert f"namespaces/{GONE}/pods/orphan-0" in uris
    assert all(r["level"] in ("error", "warning") for r in results)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "name a dump"),
        (("dump.json", "--kubeconfig", "kc"), "not both"),
        (("dump.json", "--output-dir", "out"), "--output-dir writes PolicyReports"),
        (("missing.json",), "missing.json: no such file"),
        (("--kubeconfig", "no-such-kubeconfig"), "--kubeconfig no-such-kubeconfig: no such file"),
    ],
)
def test_usage_errors_exit_two_with_a_clear_message(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "dump.json").write_text('{"apiVersion": "v1", "kind": "List", "items": []}')
    (tmp_path / "kc").write_text("apiVersion: v1\nkind: Config\n")  # flags check files as they are parsed
    done = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "audit", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"kind": "List", "items": [{"kind": "Pod"}, ', "not valid JSON at character"),
        ('{"kind": "List", "items": [{"kind": "Pod", "x": NaN}]}', "not valid JSON"),
        ('{"kind": "List", "items": [42]}', "items[0]: expected a Kubernetes object, got int"),
        ("kind: List\nitems: [\n", "not valid YAML or JSON"),
        (f'{{"kind": "Secret", "data": {{"p": "{SECRET_VALUE}"}}, oops}}', "not valid JSON at character"),
    ],
)
def test_a_malformed_dump_is_named_without_its_content(tmp_path: Path, text: str, message: str) -> None:
    done = audit("-", stdin=text)
    assert done.returncode == 2
    assert message in done.stderr
    assert SECRET_VALUE not in done.stderr
    assert "Traceback" not in done.stderr


def test_a_malformed_object_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    items = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "bad", "namespace": "a"},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "lots"}}]},
        },
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "a"}, "spec": []},
        {"kind": "Pod"},
    ]
    done = audit("-", "--format", "json", stdin=json.dumps({"kind": "List", "items": items}))
    assert done.returncode == 1, done.stderr
    rows = json.loads(done.stdout)["findings"]
    assert [(r["rule"], r["name"]) for r in rows] == [
        ("malformed-object", ""),
        ("malformed-object", "bad"),
        ("malformed-object", "p"),
    ]
    assert "spec.limits[0].max.cpu" in rows[1]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"kind": "List", "items": [{"kind": "Pod", "x": "\xff\xfe"}]}', "dump.json: not UTF-8 text"),
        (
            b'{"kind": "List", "items": [{"kind": "Pod", "x": 123456789012345678901234567890}]}',
            "beyond 64 bits",
        ),
    ],
)
def test_bytes_that_are_no_dump_exit_two(tmp_path: Path, body: bytes, message: str) -> None:
    path = tmp_path / "dump.json"
    path.write_bytes(body)
    done = audit(str(path))
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_cluster_exits_two_naming_it(tmp_path: Path) -> None:
    from tests.support.server import free_port

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
                "users": [{"name": "u", "user": {"token": "audit-token-never-shown"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    done = audit("--kubeconfig", str(kubeconfig))
    assert done.returncode == 2
    assert "GET /api/v1/namespaces: cannot reach the API server at https://127.0.0.1:" in done.stderr
    assert "audit-token-never-shown" not in done.stderr
    assert "Traceback" not in done.stderr


def test_the_documented_example_is_the_real_output(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    page = (repo / "docs" / "lint-audit-replay.md").read_text()
    shown = page.split("$ gatekeeper audit audit/cluster.txt\n", 1)[1].split("$ echo $?", 1)[0]
    done = audit(str(repo / "examples" / "audit" / "cluster.txt"))
    assert done.returncode == 1
    assert done.stdout + done.stderr == shown
