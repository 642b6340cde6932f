"""gatekeeper lint on ABAC policies: each rule on a bad and a good line, formats, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.authz.policy import PolicyError, parse_policy
from gatekeeper.cli import main
from tests.conformance.abac_corpus import BAD_POLICIES, policy_bytes

V1 = '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":%s}'

# rule id -> (a line that triggers it, a line that says what was meant and does not)
EXAMPLES = {
    "abac-everyone-grant": ('{"User":"alice"}', '{"user":"alice"}'),
    "abac-unknown-key": (
        '{"user":"alice","resource":"pods","ns":"team-a"}',
        '{"user":"alice","resource":"pods","namespace":"team-a"}',
    ),
    "abac-star-discards-subject": (
        V1 % '{"user":"*","group":"admins","readonly":true,"nonResourcePath":"*"}',
        V1 % '{"group":"admins","readonly":true,"nonResourcePath":"*"}',
    ),
    "abac-unset-namespace": (
        V1 % '{"user":"bob","resource":"pods","apiGroup":"","readonly":true}',
        V1 % '{"user":"bob","resource":"pods","apiGroup":"","namespace":"a","readonly":true}',
    ),
    "abac-unset-apigroup": (
        V1 % '{"user":"bob","resource":"deployments","namespace":"a"}',
        V1 % '{"user":"bob","resource":"deployments","namespace":"a","apiGroup":"apps"}',
    ),
    "abac-no-subject": (
        V1 % '{"readonly":true,"nonResourcePath":"/version"}',
        V1 % '{"group":"system:authenticated","readonly":true,"nonResourcePath":"/version"}',
    ),
    "abac-subresource": ('{"user":"bob","resource":"pods/log"}', '{"user":"bob","resource":"pods"}'),
    "abac-yaml-line": ("user: alice", '{"user":"alice"}'),
    "abac-broad-write": ('{"user":"alice"}', '{"user":"alice","readonly":true}'),
    "abac-shadowed": (
        '{"user":"bob","readonly":true}\n{"user":"bob","resource":"pods","readonly":true}',
        '{"user":"bob","resource":"pods","readonly":true}\n{"user":"bob","resource":"services"}',
    ),
}


def _lint(tmp_path: Path, capsys: Any, content: str, *flags: str) -> tuple[int, str]:
    policy = tmp_path / "abac.jsonl"
    policy.write_text(content)
    code = main(["lint", *flags, str(policy)])
    return code, capsys.readouterr().out


def _rules(tmp_path: Path, capsys: Any, content: str) -> set[str]:
    _, out = _lint(tmp_path, capsys, content, "--format", "json")
    return {row["rule"] for row in json.loads(out)}


@pytest.mark.parametrize("rule", sorted(EXAMPLES))
def test_rule_fires_on_the_bad_line_and_not_on_the_good_one(rule: str, tmp_path: Path, capsys: Any) -> None:
    bad, good = EXAMPLES[rule]
    assert rule in _rules(tmp_path, capsys, bad + "\n")
    assert rule not in _rules(tmp_path, capsys, good + "\n")


def test_duplicates_name_the_earlier_line(tmp_path: Path, capsys: Any) -> None:
    code, out = _lint(tmp_path, capsys, '{"user":"a","readonly":true}\n# x\n{"readonly":true,"user":"a"}\n')
    assert code == 0  # warnings only
    assert (
        f"{tmp_path / 'abac.jsonl'}:3:1: warning: grants exactly what line 1 grants [abac-duplicate]" in out
    )


def test_text_format_and_exit_code_for_errors(tmp_path: Path, capsys: Any) -> None:
    code, out = _lint(tmp_path, capsys, '{"user":"alice","Readonly":true}\n')
    assert code == 1
    first = out.splitlines()[0]
    assert first == (
        f'{tmp_path / "abac.jsonl"}:1:17: error: unknown key "Readonly" is ignored by Kubernetes, '
        "which widens the rule [abac-unknown-key]"
    )
    assert 'did you mean "readonly"?' in out


def test_sarif_is_2_1_0_with_rules_and_results(tmp_path: Path, capsys: Any) -> None:
    code, out = _lint(tmp_path, capsys, "{}\n", "--format", "sarif")
    sarif = json.loads(out)
    assert code == 1 and sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} >= set(EXAMPLES)
    (result,) = [r for r in run["results"] if r["ruleId"] == "abac-everyone-grant"]
    assert result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 1


def test_clean_policy_exits_0_and_usage_errors_exit_2(tmp_path: Path, capsys: Any) -> None:
    code, out = _lint(
        tmp_path,
        capsys,
        (V1 % '{"user":"a","namespace":"x","resource":"pods","apiGroup":"","readonly":true}') + "\n",
    )
    assert (code, out) == (0, "")
    assert main(["lint", str(tmp_path / "missing.jsonl")]) == 2
    (tmp_path / "notes.txt").write_text("hello\n")
    assert main(["lint", str(tmp_path / "notes.txt")]) == 2
    (tmp_path / "creds.csv").write_text("t,u,1\n")  # token or basic-auth? the name does not say
    assert main(["lint", str(tmp_path / "creds.csv")]) == 2
    assert "pass --kind" in capsys.readouterr().err


@pytest.mark.parametrize("case", BAD_POLICIES, ids=[c["id"] for c in BAD_POLICIES])
def test_every_bad_corpus_file_gives_the_loaders_error(
    case: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    policy = tmp_path / "abac.jsonl"
    policy.write_bytes(policy_bytes(case))
    with pytest.raises(PolicyError) as loader:
        parse_policy(policy_bytes(case), str(policy))
    code = main(["lint", "--format", "json", str(policy)])
    rows = [r for r in json.loads(capsys.readouterr().out) if r["rule"] == "abac-load-error"]
    assert code == 1
    assert [r["message"] for r in rows] == [loader.value.cause]
    if loader.value.line is not None:
        assert [r["line"] for r in rows] == [loader.value.line]
    else:  # Kubernetes names no line for an over-long one; the linter points at it
        assert [r["line"] for r in rows] == [2]


def test_shadowing_names_the_wider_line(tmp_path: Path, capsys: Any) -> None:
    policy = (
        (V1 % '{"group":"dev","namespace":"*","resource":"pods","apiGroup":""}')
        + "\n"
        + (
            V1 % '{"user":"alice","group":"dev","namespace":"team-a","resource":"pods","apiGroup":"",'
            '"readonly":true}'
        )
        + "\n"
        + (V1 % '{"user":"alice","namespace":"team-a","resource":"pods","apiGroup":"","readonly":true}')
        + "\n"
    )
    _, out = _lint(tmp_path, capsys, policy)
    assert (
        "abac.jsonl:2:1: warning: every request this line allows, line 1 already allows [abac-shadowed]"
        in out
    )
    assert ":3:1: warning: every request this line allows" not in out  # alice without group dev: not covered


def test_unknown_users_and_groups_against_credential_sources(tmp_path: Path, capsys: Any) -> None:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('0123456789abcdef0123456789abcdef,alice,1,"dev,ops"\n')
    tokens.chmod(0o600)
    policy = tmp_path / "abac.jsonl"
    policy.write_text(
        '{"user":"alice","readonly":true}\n{"user":"alcie","readonly":true}\n'
        '{"group":"devs","readonly":true}\n{"group":"ops","readonly":true}\n'
        '{"user":"system:serviceaccount:kube-system:default","readonly":true}\n'
    )
    code = main(["lint", "--format", "json", "--token-auth-file", str(tokens), str(policy)])
    rows = json.loads(capsys.readouterr().out)
    unknown = sorted((r["line"], r["rule"]) for r in rows if r["rule"].startswith("abac-unknown-"))
    assert unknown == [(2, "abac-unknown-user"), (3, "abac-unknown-group")]
    assert code == 0


def test_client_certificates_are_a_credential_source(tmp_path: Path, capsys: Any) -> None:
    from gatekeeper import pki

    ca = pki.make_ca()
    pki.write(
        pki.issue_client(ca, "kube-apiserver", ["system:masters", "webhook-callers"]),
        tmp_path / "certs",
        "api",
    )
    policy = tmp_path / "abac.jsonl"
    policy.write_text(
        '{"user":"kube-apiserver","readonly":true}\n{"group":"webhook-callers","readonly":true}\n'
        '{"user":"kube-apiserver-typo","readonly":true}\n'
    )
    code = main(["lint", "--format", "json", "--client-cert", str(tmp_path / "certs"), str(policy)])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(r["line"], r["rule"]) for r in rows if r["rule"].startswith("abac-unknown-")] == [
        (3, "abac-unknown-user")
    ]
