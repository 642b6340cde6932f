"""The CLI explains itself: the overview with no command, --version, every flag's help with its
default, one placeholder style, a word when a command waits on a terminal, and destructive
commands that refuse an empty input."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gatekeeper.cli import COMMANDS, build_parser, main
from gatekeeper.commands.usage import shows_default
from tests.integration.test_cli_errors import leaves, run_cli

# The placeholders options use: upper case words, one per kind of value.
PLACEHOLDER = re.compile(
    r"^[A-Z][A-Z_]*([|/][A-Z_]+)?(\[?[:,][A-Z_,.\[\]]*)*(,\.\.\.)?$|^user:NAME\|group:NAME,\.\.\.$"
)
STATE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\nstatus: {phase: Active}\n"


def test_every_option_of_every_command_has_help_and_shows_its_default() -> None:
    missing = []
    for command, parser in leaves(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            shown = formatter._expand_help(action) if action.help else ""
            where = f"{' '.join(command)} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                missing.append(f"{where}: no help")
            elif action.option_strings and not (action.required or shows_default(shown)):
                missing.append(f"{where}: no default shown")
    assert missing == []


def test_options_that_take_a_value_use_one_placeholder_style() -> None:
    odd = []
    for command, parser in leaves(build_parser()):
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.choices is not None:
                continue
            metavars = action.metavar if isinstance(action.metavar, tuple) else (action.metavar,)
            for metavar in metavars:
                if metavar is None or not PLACEHOLDER.match(metavar):
                    odd.append(f"{' '.join(command)} {action.option_strings[0]} {metavar}")
    assert odd == []


def test_the_help_of_serve_shows_what_a_newcomer_asks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "With no flags: https://127.0.0.1:8443" in text
    assert (
        "--bind-address IP address to listen on; 0.0.0.0 (or ::) to serve a cluster (default: 127.0.0.1)"
        in text
    )
    assert "--secure-port PORT HTTPS port (default: 8443)" in text
    assert "--workers N worker processes (default: 1)" in text
    assert "packaged example" in text


def test_gatekeeper_alone_prints_the_command_overview(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli([], capsys)
    assert code == 2
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(commands.choices) == len(COMMANDS)
    for name in commands.choices:
        assert f"\n    {name}" in err, name
    assert "`gatekeeper COMMAND --help`" in " ".join(err.split())


def test_a_command_without_its_action_prints_its_actions(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["state"], capsys)
    assert code == 2 and "sync" in err and "show" in err and "reset" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gatekeeper {importlib.metadata.version('gatekeeper')}"


def _on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run a command whose stdin is a terminal; end its input with Ctrl-D once it said something."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper.cli", *args],
        stdin=follower,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        cwd=cwd,
        text=True,
    )
    os.close(follower)
    try:
        assert process.stderr is not None
        first = process.stderr.readline()  # blocks until the command speaks (or exits)
        time.sleep(0.2)
        os.write(leader, b"\x04")
        rest = process.stderr.read()
        return process.wait(timeout=30), first + rest
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize(
    "args",
    [
        ["authorize", "--authorization-policy-file", "policy.jsonl"],
        ["quota", "reconcile", "--store", "memory://"],
        ["replay", "-", "--authorization-policy-file", "policy.jsonl"],
    ],
)
def test_a_command_reading_a_terminal_says_so(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "policy.jsonl").write_text('{"user":"alice"}\n')
    _code, err = _on_a_terminal(args, tmp_path)
    assert err.startswith("gatekeeper: reading ") and "from stdin; Ctrl-D to end" in err, err


def test_quota_reconcile_refuses_an_empty_input_and_keeps_the_usage(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'gk.db'}"
    assert main(["state", "sync", "--store", store, str(_state(tmp_path))]) == 0
    empty = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "quota", "reconcile", "--store", store],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert empty.returncode == 1
    assert "holds no objects: reconciling it would set every quota's usage to zero" in empty.stderr
    assert "--allow-empty" in empty.stderr
    assert _used_pods(store) == "2"
    allowed = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "quota", "reconcile", "--store", store, "--allow-empty"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert _used_pods(store) == "0"


def _used_pods(store: str) -> str:
    shown = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "state", "show", "--store", store, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (quota,) = [item for item in json.loads(shown.stdout)["items"] if item["kind"] == "ResourceQuota"]
    return str(quota["status"]["used"]["pods"])


def test_state_sync_refuses_an_empty_input(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'gk.db'}"
    assert main(["state", "sync", "--store", store, str(_state(tmp_path))]) == 0
    (tmp_path / "empty.yaml").write_text("")
    assert main(["state", "sync", "--store", store, str(tmp_path / "empty.yaml")]) == 1
    assert main(["state", "show", "--store", store, "-o", "json"]) == 0  # still there


def _state(root: Path) -> Path:
    quota = (
        "---\napiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q, namespace: shop}\n"
        "spec: {hard: {pods: '3'}}\nstatus: {hard: {pods: '3'}, used: {pods: '2'}}\n"
    )
    (root / "state.yaml").write_text(STATE + quota)
    return root / "state.yaml"
