"""Every subcommand against every kind of bad path: one line on stderr that names the flag and the
file, exit 1 or 2, never a traceback. The flags are found by walking the real parser, so a file
flag added later is covered (or this test names it until it is classified)."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gatekeeper import pki
from gatekeeper.cli import build_parser, main
from gatekeeper.config import files
from tests.support.server import free_port

# Path flags that name something gatekeeper writes or creates: not inputs, not checked here.
OUTPUTS = {
    "--out-dir",
    "--state-out",
    "--audit-log-path",
    "--cert-dir",
    "--dir",
    "--data-dir",
    "--config-dir",
    "--output-dir",
}
INPUT_TYPES = {files.input_file, files.input_path, files.tls_file, files.input_or_stdin, files.kubeconfig}
POLICY = '{"user":"alice"}\n'


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from leaves(sub, (*path, name))


def good_files(root: Path) -> dict[str, str]:
    (root / "policy.jsonl").write_text(POLICY)
    (root / "tokens.csv").write_text("tok,alice,uid-alice\n")
    (root / "audit.jsonl").write_text("")
    return {name: str(root / name) for name in ("policy.jsonl", "tokens.csv", "audit.jsonl")}


def base_args(command: tuple[str, ...], good: dict[str, str]) -> list[str]:
    """The least a command needs besides the flag under test."""
    policy = ["--authorization-policy-file", good["policy.jsonl"]]
    return {
        ("authorize",): policy,
        ("authenticate",): ["--token-auth-file", good["tokens.csv"]],
        ("who-can",): ["get", "pods", *policy],
        ("replay",): [good["audit.jsonl"], *policy],
        ("webhook-config",): ["--url", "https://127.0.0.1:8443"],
    }.get(command, [])


def cases() -> list[tuple[tuple[str, ...], argparse.Action]]:
    found = []
    for command, parser in leaves(build_parser()):
        for action in parser._actions:
            if action.type in INPUT_TYPES:
                found.append((command, action))
    return found


BAD_PATHS: dict[str, Callable[[Path], Path]] = {
    "missing": lambda root: root / "nope.crt",
    "a folder": lambda root: _folder(root),
    "under a file": lambda root: _file(root) / "x.crt",
    "unreadable": lambda root: _unreadable(root),
}


def _folder(root: Path) -> Path:
    (root / "a-folder").mkdir(exist_ok=True)
    return root / "a-folder"


def _file(root: Path) -> Path:
    (root / "plain.txt").write_text("x")
    return root / "plain.txt"


def _unreadable(root: Path) -> Path:
    path = root / "secret.key"
    path.write_text("x")
    path.chmod(0)
    return path


def _id(case: tuple[tuple[str, ...], argparse.Action]) -> str:
    command, action = case
    return f"{' '.join(command)} {action.option_strings[0] if action.option_strings else action.metavar}"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(args)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capsys.readouterr().err


def test_every_input_flag_has_a_checking_type() -> None:
    """A Path flag is either an output (listed) or checked when parsed: nothing reads an unchecked path."""
    unchecked = [
        f"{' '.join(command)} {action.option_strings[0]}"
        for command, parser in leaves(build_parser())
        for action in parser._actions
        if action.type is Path and not set(action.option_strings) & OUTPUTS
    ]
    assert unchecked == []
    assert len(cases()) >= 25  # serve's TLS and credential flags, the etcd flags, every input positional


def bad_cases() -> list[tuple[tuple[tuple[str, ...], argparse.Action], str]]:
    """Each input flag with each kind of bad path; a folder is fine where files or folders are read,
    and root reads every file whatever its mode."""
    return [
        (case, kind)
        for case in cases()
        for kind in sorted(BAD_PATHS)
        if not (kind == "a folder" and case[1].type is files.input_path)
        and not (kind == "unreadable" and os.geteuid() == 0)
    ]


@pytest.mark.parametrize(("case", "kind"), bad_cases(), ids=lambda v: v if isinstance(v, str) else _id(v))
def test_a_bad_path_is_one_line_naming_the_flag_and_the_file(
    case: tuple[tuple[str, ...], argparse.Action],
    kind: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command, action = case
    monkeypatch.chdir(tmp_path)
    good = good_files(tmp_path)
    bad = str(BAD_PATHS[kind](tmp_path))
    args = [*command, *base_args(command, good)]
    if action.option_strings:
        flag = action.option_strings[0]
        args += [flag, bad, good["policy.jsonl"]] if action.nargs == 2 else [flag, bad]
        named = flag
    else:  # a positional input: in place of the good one, if the command has one
        args = [a for a in args if a != good["audit.jsonl"]] + [bad]
        named = str(action.metavar)
    code, err = run_cli(args, capsys)
    lines = err.strip().splitlines()
    assert code in (1, 2), err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert named in lines[0] and bad in lines[0], lines[0]
    assert "; " in lines[0], f"no fix given: {lines[0]}"  # "...: no such file ...; check the path"


@pytest.fixture
def dev_pki(tmp_path: Path) -> Path:
    pki.ensure_dev_pki(tmp_path / "pki")
    pki.ensure_dev_client(tmp_path / "pki", pki.DEV_CLIENT)
    return tmp_path / "pki"


def serve_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, err = run_cli(["serve", "--secure-port", str(free_port()), *args], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and "Traceback" not in err, err
    assert len(lines) == 1, err  # the start-up log goes to stderr through logging: only on success
    return lines[0]


def test_a_key_of_another_certificate_names_both_files(
    dev_pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, other_key = dev_pki / "server.crt", dev_pki / "kube-apiserver.key"
    line = serve_error(["--tls-cert-file", str(cert), "--tls-private-key-file", str(other_key)], capsys)
    assert f"--tls-private-key-file {other_key} is not the key of --tls-cert-file {cert}" in line


@pytest.mark.parametrize("flag", ["--tls-cert-file", "--client-ca-file"])
def test_a_certificate_that_is_not_pem_is_named(
    flag: str, dev_pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_pem = tmp_path / "cert.der"
    not_pem.write_bytes(b"\x30\x82\x01\x0a not a certificate")
    given = {
        "--tls-cert-file": str(dev_pki / "server.crt"),
        "--tls-private-key-file": str(dev_pki / "server.key"),
        "--client-ca-file": str(dev_pki / "ca.crt"),
        flag: str(not_pem),
    }
    line = serve_error([arg for pair in given.items() for arg in pair], capsys)
    assert f"{flag} {not_pem}: a DER (binary) file" in line and "openssl x509 -inform der" in line


def test_a_key_that_is_not_pem_is_named(
    dev_pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "server.key"
    key.write_text("hello\n")
    line = serve_error(
        ["--tls-cert-file", str(dev_pki / "server.crt"), "--tls-private-key-file", str(key)], capsys
    )
    assert f"--tls-private-key-file {key}: not a PEM private key" in line


def test_a_port_in_use_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = serve_error(["--secure-port", str(port)], capsys)
    assert (
        f"--secure-port {port}: 127.0.0.1:{port} is already in use" in line
        and "another --secure-port" in line
    )


def test_one_of_the_tls_pair_is_named(dev_pki: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = serve_error(["--tls-cert-file", str(dev_pki / "server.crt")], capsys)
    assert "--tls-cert-file and --tls-private-key-file go together" in line


def test_an_unknown_flag_suggests_the_right_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["serve", "--port", "1"], capsys)
    assert code == 2 and err.strip().splitlines() == [
        "gatekeeper serve: unknown flag --port (did you mean --secure-port?) (see `gatekeeper serve --help`)"
    ]
    code, err = run_cli(["webhook-config", "--url", "https://h", "--out-dri", "x"], capsys)
    assert (
        code == 2 and "unknown flag --out-dri (did you mean --out-dir?)" in err and len(err.splitlines()) == 1
    )


def test_a_bad_flag_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["serve", "--log-format", "xml"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("gatekeeper serve: --log-format invalid choice: 'xml'"), err


def test_webhook_config_without_certificates_says_how_to_make_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(
        [
            "webhook-config",
            "--url",
            "https://h:1",
            "--cert-dir",
            str(tmp_path / "nocerts"),
            "--out-dir",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"--cert-dir {tmp_path / 'nocerts'}: no ca.crt; run `gatekeeper certs init" in err
    assert not (tmp_path / "out").exists()


def test_webhook_config_names_a_client_key_of_another_certificate(
    dev_pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(
        [
            "webhook-config",
            "--url",
            "https://127.0.0.1:1",
            "--cert-dir",
            str(dev_pki),
            "--client-cert",
            str(dev_pki / "kube-apiserver.crt"),
            "--client-key",
            str(dev_pki / "server.key"),
            "--out-dir",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "--client-key" in err and "is not the key of --client-cert" in err
