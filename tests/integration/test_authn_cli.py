"""The offline commands: certs init, hash-password, authenticate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gatekeeper import pki
from gatekeeper.authn.passwords import parse_password
from gatekeeper.authn.x509 import PeerCertificates, X509Authenticator


def gatekeeper(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", *args], cwd=cwd, input=stdin, capture_output=True, text=True
    )


def test_certs_init_layout_modes_and_identities(tmp_path: Path) -> None:
    result = gatekeeper(
        "certs",
        "init",
        "--dir",
        "pki",
        "--host",
        "gk.example.com",
        "--host",
        "10.0.0.7",
        "--client",
        "kube-apiserver",
        "--client",
        "alice:dev,ops",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    d = tmp_path / "pki"
    names = sorted(p.name for p in d.iterdir())
    assert names == [
        ".gitignore",
        "alice.crt",
        "alice.key",
        "ca.crt",
        "ca.key",
        "kube-apiserver.crt",
        "kube-apiserver.key",
        "server.crt",
        "server.key",
    ]
    assert (d / ".gitignore").read_text().splitlines()[-1] == "*"
    for key in d.glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key
    server = x509.load_pem_x509_certificate((d / "server.crt").read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "gk.example.com"} <= set(sans.get_values_for_type(x509.DNSName))
    assert {"127.0.0.1", "10.0.0.7"} <= {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    alice = x509.load_pem_x509_certificate((d / "alice.crt").read_bytes())
    assert [a.value for a in alice.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "dev",
        "ops",
    ]
    # serve's dev client CA authenticates them
    authn = X509Authenticator.from_file(d / "ca.crt")
    user = authn.authenticate(PeerCertificates([(d / "alice.crt").read_text()]))
    assert user is not None and (user.name, user.groups) == ("alice", ("dev", "ops"))
    assert "pki/alice.key" in result.stdout


def test_certs_init_keeps_the_ca_and_reissues_a_changed_client(tmp_path: Path) -> None:
    assert gatekeeper("certs", "init", "--dir", "pki", cwd=tmp_path).returncode == 0
    ca_before = (tmp_path / "pki" / "ca.crt").read_bytes()
    kube_before = (tmp_path / "pki" / "kube-apiserver.crt").read_bytes()
    assert (
        gatekeeper(
            "certs", "init", "--dir", "pki", "--client", "kube-apiserver:system:masters", cwd=tmp_path
        ).returncode
        == 0
    )
    assert (tmp_path / "pki" / "ca.crt").read_bytes() == ca_before
    kube_after = x509.load_pem_x509_certificate((tmp_path / "pki" / "kube-apiserver.crt").read_bytes())
    assert (tmp_path / "pki" / "kube-apiserver.crt").read_bytes() != kube_before
    assert [a.value for a in kube_after.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters"
    ]
    assert gatekeeper("certs", "init", "--dir", "pki", "--force", cwd=tmp_path).returncode == 0
    assert (tmp_path / "pki" / "ca.crt").read_bytes() != ca_before


def test_certs_init_layout_is_what_serve_uses(tmp_path: Path) -> None:
    assert gatekeeper("certs", "init", "--dir", "certs", cwd=tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "certs").iterdir()}
    pki.ensure_dev_pki(tmp_path / "certs")
    pki.ensure_dev_client(tmp_path / "certs", pki.DEV_CLIENT)
    after = {p.name: p.read_bytes() for p in (tmp_path / "certs").iterdir()}
    assert before == after  # serve would reuse every file


def test_hash_password_reads_stdin_and_never_echoes(tmp_path: Path) -> None:
    for algorithm in ("scrypt", "argon2id"):
        result = gatekeeper("hash-password", "--algorithm", algorithm, cwd=tmp_path, stdin="s3cret-pw\n")
        assert result.returncode == 0, result.stderr
        encoded = result.stdout.strip()
        assert encoded.startswith(f"${algorithm}$")
        assert "s3cret-pw" not in result.stdout + result.stderr
        assert parse_password(encoded).verify("s3cret-pw")
    assert gatekeeper("hash-password", cwd=tmp_path, stdin="\n").returncode == 1


def test_authenticate_offline_json_lines(tmp_path: Path) -> None:
    (tmp_path / "tokens.csv").write_text('tok-a,alice,uid-a,"dev,ops"\n')
    reviews = (
        "\n".join(
            json.dumps(r)
            for r in [
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "tok-a"}},
                {
                    "apiVersion": "authentication.k8s.io/v1beta1",
                    "kind": "TokenReview",
                    "spec": {"token": "tok-b"},
                },
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenReview",
                    "spec": {"token": "tok-a", "audiences": ["api"]},
                },
            ]
        )
        + "\n"
    )
    result = gatekeeper("authenticate", "--token-auth-file", "tokens.csv", "-", cwd=tmp_path, stdin=reviews)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["apiVersion"] for a in answers] == [
        "authentication.k8s.io/v1",
        "authentication.k8s.io/v1beta1",
        "authentication.k8s.io/v1",
    ]
    assert answers[0]["status"]["user"] == {
        "username": "alice",
        "uid": "uid-a",
        "groups": ["dev", "ops", "system:authenticated"],
    }
    assert answers[1]["status"] == {"authenticated": False}
    assert "tok-a" not in result.stdout
    restricted = gatekeeper(
        "authenticate",
        "--token-auth-file",
        "tokens.csv",
        "--api-audiences",
        "other",
        cwd=tmp_path,
        stdin=reviews,
    )
    assert [json.loads(line)["status"]["authenticated"] for line in restricted.stdout.splitlines()] == [
        True,
        False,
        False,
    ]


def test_authenticate_refuses_a_bad_token_file_and_bad_reviews(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("tok-secret-1,alice\n")
    result = gatekeeper("authenticate", "--token-auth-file", "bad.csv", cwd=tmp_path, stdin="{}")
    assert result.returncode == 1
    assert "bad.csv:1: must have at least 3 columns" in result.stderr
    assert "tok-secret-1" not in result.stderr
    (tmp_path / "ok.csv").write_text("tok,alice,1\n")
    result = gatekeeper(
        "authenticate",
        "--token-auth-file",
        "ok.csv",
        cwd=tmp_path,
        stdin='{"kind":"TokenReview"}\nnot json\n',
    )
    assert result.returncode == 1
    assert "<stdin>:1: apiVersion: required field is missing" in result.stderr
    assert "<stdin>:2: not valid JSON" in result.stderr
