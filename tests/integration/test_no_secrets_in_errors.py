"""Finding 2: a file with an error on a line that holds a password never puts the password on the
unauthenticated /readyz, in the server log, or in the CLI's output; the error names file and line.

PyYAML's own message quotes the offending line under a caret (and some problems quote what they
found: an alias, a tag). Each broken file here has a unique marker on the broken line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatekeeper.cli import main
from tests.support.server import running_server
from tests.support.waiting import wait_for

MARKER = f"pw-{uuid.uuid4().hex}"
GOOD_STATE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\nstatus: {phase: Active}\n"
# The password's line is line 10 (document 1, after the Namespace).
BROKEN_LINES = {
    "trailing text": f'  password: "{MARKER}" oops\n',
    "mapping in a value": f"  password: {MARKER}: x\n",
    "undefined alias": f"  password: *{MARKER}\n",
    "unknown tag": f"  password: !{MARKER} x\n",
    "bad escape": f'  password: "{MARKER}\\q"\n',
}
CALLER_POLICY = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"*"}}\n'
)


def broken_state(line: str) -> str:
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: team}\nstringData:\n"
    return f"{GOOD_STATE}---\n{secret}{line}"


def replace(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.new")
    staging.write_text(text)
    os.replace(staging, path)


def manifest_failures(client: httpx.Client) -> int:
    return int(client.get("/readyz").json()["checks"]["state manifests"]["failures"])


def assert_clean(text: str, where: str) -> None:
    assert MARKER not in text, f"{where} quotes the secret line: {text[:500]}"


def test_readyz_and_the_log_name_the_line_but_never_quote_it(tmp_path: Path) -> None:
    state, policy, tokens = tmp_path / "state.yaml", tmp_path / "abac.jsonl", tmp_path / "tokens.csv"
    state.write_text(GOOD_STATE)
    policy.write_text(CALLER_POLICY)
    tokens.write_text("tok-1,alice,uid-1\n")
    args = ["--state", str(state), "--store", "memory://", "--authorization-policy-file", str(policy),
            "--token-auth-file", str(tokens), "--reload-settle", "0.2"]
    with running_server(tmp_path, args) as server, server.client() as client:

        def errors() -> dict[str, Any] | None:
            checks = client.get("/readyz").json()["checks"]
            names = ("state manifests", "authorization policy", "token file")
            return checks if all("lastError" in checks[name] for name in names) else None

        for kind, line in BROKEN_LINES.items():
            before = manifest_failures(client)
            replace(state, broken_state(line))
            wait_for(lambda b=before: manifest_failures(client) > b)
            readyz = client.get("/readyz")
            assert_clean(readyz.text, f"/readyz ({kind})")
            error = readyz.json()["checks"]["state manifests"]["lastError"]
            assert error.startswith(f"{state}: document 1: not valid YAML or JSON: line 10, column "), error
        # the policy read as YAML (a line not starting with "{"), and a token file with a short row
        replace(policy, CALLER_POLICY + f'spec: {{user: "{MARKER}" oops}}\n')
        replace(tokens, f"{MARKER},alice\n")
        checks = wait_for(errors)
        assert_clean(json.dumps(checks), "/readyz")
        assert checks["authorization policy"]["lastError"].startswith(f"{policy}:2: invalid YAML")
        assert checks["token file"]["lastError"].startswith(f"token file {tokens}:1: must have at least 3")
    assert_clean(server.log(), "the server log")


def test_start_up_with_a_broken_manifest_names_the_line_only(tmp_path: Path) -> None:
    state, policy = tmp_path / "state.yaml", tmp_path / "abac.jsonl"
    state.write_text(broken_state(BROKEN_LINES["mapping in a value"]))
    policy.write_text(CALLER_POLICY)
    command = [sys.executable, "-m", "gatekeeper.cli", "serve", "--state", str(state), "--store", "memory://",
               "--authorization-policy-file", str(policy), "--cert-dir", str(tmp_path / "certs"),
               "--secure-port", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    assert_clean(done.stdout + done.stderr, "serve's output")
    assert f"{state}: document 1: not valid YAML or JSON: line 10, column 48: mapping values" in done.stderr


@pytest.mark.parametrize("kind", sorted(BROKEN_LINES))
def test_lint_names_the_line_and_never_quotes_it(tmp_path: Path, capsys: Any, kind: str) -> None:
    state = tmp_path / "state.yaml"
    state.write_text(broken_state(BROKEN_LINES[kind]))
    assert main(["lint", "--format", "json", str(state)]) == 1
    out = capsys.readouterr()
    assert_clean(out.out + out.err, "lint")
    findings = json.loads(out.out)
    assert [(f["line"], f["rule"]) for f in findings] == [(10, "manifest-load-error")], findings


def test_state_sync_and_quota_reconcile_never_quote_the_line(tmp_path: Path, capsys: Any) -> None:
    listed = tmp_path / "live.yaml"
    listed.write_text(broken_state(BROKEN_LINES["trailing text"]))
    store = f"sqlite:///{tmp_path / 'gatekeeper.db'}"
    for command in (["state", "sync"], ["quota", "reconcile"]):
        assert main([*command, "--store", store, str(listed)]) == 1
        out = capsys.readouterr()
        assert_clean(out.out + out.err, " ".join(command))
        assert "document 1: not valid YAML or JSON: line 10, column " in out.err, out.err
