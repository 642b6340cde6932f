"""Caller authentication and authorization on a real `gatekeeper serve`: real TLS, real files.

One server with a token file, a basic-auth file (plaintext and hashed passwords), caller lists
that let kube-apiserver, alice (token), bob and carol (basic) call the webhooks and group
"monitoring" GET /metrics, and an ABAC policy that still has the per-path lines callers once
needed (they no longer decide anything: tests/integration/test_webhook_callers.py). At the end,
the server's log is searched for every secret the tests used.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatekeeper import pki
from gatekeeper.server.routes import ROUTES
from tests.support.certs import bad_certs, no_cn, write_pair
from tests.support.server import Server, running_server
from tests.support.waiting import wait_for

TOKEN_ALICE = "tok-alice-5d41402abc4b2a76b9719d911017c592"
TOKEN_WATCHER = "tok-watcher-7215ee9c7d9dc229d2921a40e899ec5f"
TOKEN_LATER = "tok-later-b6d767d2f8ed5d21a44b0e5886680cb9"
PASSWORD_BOB = "pw-bob-plain-0cc175b9c0f1b6a8"
PASSWORD_CAROL = "pw-carol-hashed-92eb5ffee6ae2fec"
SECRETS = [TOKEN_ALICE, TOKEN_WATCHER, TOKEN_LATER, PASSWORD_BOB, PASSWORD_CAROL]


def rule(spec: dict[str, Any]) -> str:
    return json.dumps(
        {"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": spec}
    )


ENDPOINTS = [
    ("POST", "/authorize"),
    ("POST", "/authenticate"),
    ("POST", "/mutate"),
    ("POST", "/validate"),
    ("POST", "/admit"),
    ("GET", "/metrics"),
]
POLICY = (
    "\n".join(
        [
            *(rule({"user": "kube-apiserver", "nonResourcePath": path}) for _, path in ENDPOINTS),
            rule({"user": "alice", "nonResourcePath": "/authorize"}),
            rule({"user": "bob", "nonResourcePath": "/authenticate"}),
            rule({"user": "carol", "nonResourcePath": "/authorize"}),
            rule({"group": "monitoring", "nonResourcePath": "/metrics", "readonly": True}),
        ]
    )
    + "\n"
)


def served_paths() -> set[tuple[str, str]]:
    return {(route.method, route.path) for route in ROUTES}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Setup:
    server: Server
    workdir: Path
    tokens: Path
    carol_hash: str


def hash_with_cli(password: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "hash-password"],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert password not in result.stdout + result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("authn")
    (workdir / "abac.jsonl").write_text(POLICY)
    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{TOKEN_ALICE},alice,uid-alice,"dev,ops"\n{TOKEN_WATCHER},watcher,uid-w,monitoring\n')
    carol_hash = hash_with_cli(PASSWORD_CAROL)
    (workdir / "basic.csv").write_text(f'{PASSWORD_BOB},bob,uid-bob\n"{carol_hash}",carol,uid-carol\n')
    args = [
        "--authorization-policy-file",
        "abac.jsonl",
        "--token-auth-file",
        "tokens.csv",
        "--basic-auth-file",
        "basic.csv",
        "--webhook-callers",
        "user:kube-apiserver,user:alice,user:bob,user:carol",
        "--metrics-readers",
        "user:kube-apiserver,group:monitoring",
    ]
    with running_server(workdir, args) as server:
        yield Setup(server, workdir, tokens, carol_hash)
        log = server.log()
    # No credential ever reaches the log: tokens, passwords, hashes, private keys.
    for secret in [*SECRETS, carol_hash]:
        assert secret not in log
    for key in workdir.rglob("*.key"):
        body = "".join(line for line in key.read_text().splitlines() if not line.startswith("-----"))
        assert body[:40] not in log


def sar(user: str = "alice") -> dict[str, Any]:
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": user, "resourceAttributes": {"verb": "get", "resource": "pods"}},
    }


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == (
        'Bearer realm="gatekeeper", Basic realm="gatekeeper", charset="UTF-8"'
    )
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


def call(c: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return c.request(method, path, **({"json": {}} if method == "POST" else {}), **kwargs)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_each_endpoint_without_credentials_is_401(setup: Setup, method: str, path: str) -> None:
    with setup.server.client(cert=None) as c:
        assert_unauthorized(call(c, method, path))
        assert_unauthorized(call(c, method, path + "?timeout=30s"))


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_each_endpoint_with_credentials_the_policy_does_not_allow_is_403(
    setup: Setup, method: str, path: str
) -> None:
    with setup.server.client_as("mallory", groups=["dev"]) as c:
        response = call(c, method, path)
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["reason"] == "Forbidden" and body["code"] == 403
    assert body["message"] == f'forbidden: User "mallory" cannot {method.lower()} path "{path}"'


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_each_endpoint_lets_kube_apiserver_in(setup: Setup, method: str, path: str) -> None:
    with setup.server.client() as c:
        response = call(c, method, path + "?timeout=30s")
    assert response.status_code not in (401, 403), response.text


def test_every_served_route_but_health_needs_a_caller(setup: Setup) -> None:
    with setup.server.client(cert=None) as c:
        for method, path in sorted(served_paths()):
            response = call(c, method, path)
            if path in ("/healthz", "/readyz"):
                assert response.status_code == 200, path
            else:
                assert response.status_code == 401, (method, path)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer wrong-token",
        f"Bearer {TOKEN_ALICE}x",
        f"Bearer {TOKEN_ALICE[:-1]}",
        f"Bearer {TOKEN_ALICE} extra",
        f"Token {TOKEN_ALICE}",
        TOKEN_ALICE,
        "Basic",
        "Basic ###",
        "Basic " + base64.b64encode(b"bob").decode(),
        "Basic " + base64.b64encode(f"bob:{PASSWORD_BOB}x".encode()).decode(),
        "Basic " + base64.b64encode(f"nobody:{PASSWORD_BOB}".encode()).decode(),
        "Basic " + base64.b64encode(b"carol:wrong").decode(),
        "Negotiate abc",
    ],
)
def test_missing_malformed_and_wrong_authorization_all_look_the_same(setup: Setup, header: str) -> None:
    with setup.server.client(cert=None) as c:
        assert_unauthorized(c.post("/authorize", json=sar(), headers={"Authorization": header}))


def test_bearer_token(setup: Setup) -> None:
    with setup.server.client(cert=None, headers=bearer(TOKEN_ALICE)) as c:
        assert c.post("/authorize", json=sar()).status_code == 200
        assert c.post("/authenticate", json={}).status_code == 400  # a caller of every webhook


def test_basic_auth_plaintext_and_hashed(setup: Setup) -> None:
    with setup.server.client(cert=None, headers=basic("bob", PASSWORD_BOB)) as c:
        assert (
            c.post(
                "/authenticate",
                json={
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenReview",
                    "spec": {"token": "x"},
                },
            ).status_code
            == 200
        )
    with setup.server.client(cert=None, headers=basic("carol", PASSWORD_CAROL)) as c:
        for _ in range(3):  # the second and third use the verified-password cache
            assert c.post("/authorize", json=sar()).status_code == 200


def test_group_from_the_token_file_authorizes(setup: Setup) -> None:
    with setup.server.client(cert=None, headers=bearer(TOKEN_WATCHER)) as c:
        assert c.get("/metrics").status_code == 200
        assert c.post("/authorize", json=sar()).status_code == 403


def test_health_needs_no_credentials(setup: Setup) -> None:
    with setup.server.client(cert=None) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200


@pytest.mark.parametrize("kind", ["wrong-ca", "expired", "not-yet-valid", "server-auth-only", "self-signed"])
def test_bad_client_certificates_never_authenticate(setup: Setup, kind: str, tmp_path: Path) -> None:
    """OpenSSL refuses them in the handshake (CERT_OPTIONAL still verifies what is presented);
    should one get through, the app refuses it too (see test_authn_tls.py)."""
    ca = pki.load(pki.pair(setup.server.cert_dir, "ca"))
    cert = write_pair(dict(bad_certs(ca).items())[kind], tmp_path, kind)
    try:
        with setup.server.client(cert=cert) as c:
            response = c.post("/authorize", json=sar())
    except (httpx.TransportError, ssl.SSLError):
        return  # the handshake failed: not authenticated
    assert_unauthorized(response)


def test_a_certificate_without_cn_is_not_authenticated_by_x509(setup: Setup, tmp_path: Path) -> None:
    ca = pki.load(pki.pair(setup.server.cert_dir, "ca"))
    cert = write_pair(no_cn(ca), tmp_path, "no-cn")
    with setup.server.client(cert=cert) as c:
        assert_unauthorized(c.post("/authorize", json=sar()))
    # ...but a token on the same connection still works (x509 said "not me", not "refused")
    with setup.server.client(cert=cert, headers=bearer(TOKEN_ALICE)) as c:
        assert c.post("/authorize", json=sar()).status_code == 200


def test_a_certificate_user_with_groups_from_o(setup: Setup) -> None:
    with setup.server.client_as("someone", groups=["monitoring"]) as c:
        assert c.get("/metrics").status_code == 200
        assert c.post("/authorize", json=sar()).status_code == 403


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_token_review_through_the_webhook(setup: Setup, version: str) -> None:
    review = {
        "apiVersion": f"authentication.k8s.io/{version}",
        "kind": "TokenReview",
        "spec": {"token": TOKEN_ALICE, "audiences": ["https://kubernetes.default.svc"]},
    }
    with setup.server.client() as c:
        response = c.post("/authenticate?timeout=30s", json=review)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert TOKEN_ALICE not in response.text
        assert answer["apiVersion"] == f"authentication.k8s.io/{version}"
        assert answer["status"] == {
            "authenticated": True,
            "user": {
                "username": "alice",
                "uid": "uid-alice",
                "groups": ["dev", "ops", "system:authenticated"],
            },
        }
        review["spec"]["token"] = "not-a-token"
        assert c.post("/authenticate", json=review).json()["status"] == {"authenticated": False}
        assert c.post("/authenticate", json={"kind": "TokenReview"}).status_code == 400


def test_token_file_hot_reload_keeps_the_last_good_version(setup: Setup) -> None:
    original = setup.tokens.read_text()
    server = setup.server

    def status() -> dict[str, Any]:
        with server.client(cert=None) as c:
            checks: dict[str, Any] = c.get("/readyz").json()["checks"]
            return checks["token file"]

    def works(token: str) -> bool:
        with server.client(cert=None, headers=bearer(token)) as c:
            return c.post("/authorize", json=sar()).status_code == 200

    try:
        later = original.replace("alice,uid-alice", "alice,uid-alice-2") + f"{TOKEN_LATER},alice,uid-alice\n"
        setup.tokens.write_text(later)
        wait_for(lambda: works(TOKEN_LATER))
        assert works(TOKEN_ALICE)
        setup.tokens.write_text(f"{TOKEN_ALICE},alice-only-two-columns\n")
        wait_for(lambda: "lastError" in status())
        assert "at least 3 columns" in status()["lastError"]
        assert TOKEN_ALICE not in json.dumps(status())
        assert works(TOKEN_LATER)  # the last good version is still in force
    finally:
        setup.tokens.write_text(original)
        wait_for(lambda: status()["ok"])
    assert not works(TOKEN_LATER)


def test_the_default_policy_and_dev_certificates_work_out_of_the_box(tmp_path: Path) -> None:
    policies = Path(__file__).resolve().parents[2] / "policies" / "abac.jsonl"
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "abac.jsonl").write_bytes(policies.read_bytes())
    with running_server(tmp_path) as server:
        client_cert = server.cert_dir / "kube-apiserver.crt"
        assert client_cert.exists()
        assert (server.cert_dir / "kube-apiserver.key").stat().st_mode & 0o777 == 0o600
        assert str(client_cert) in server.log()  # serve says where it is
        with server.client() as c:
            response = c.post("/authorize?timeout=30s", json=sar())
            assert response.status_code == 200, response.text
        with server.client(cert=None) as c:
            assert c.post("/authorize", json=sar()).status_code == 401


def test_anonymous_auth(tmp_path: Path) -> None:
    (tmp_path / "abac.jsonl").write_text(
        rule({"group": "system:unauthenticated", "nonResourcePath": "/authorize"})
    )
    (tmp_path / "tokens.csv").write_text(f"{TOKEN_ALICE},alice,1\n")
    args = [
        "--authorization-policy-file",
        "abac.jsonl",
        "--token-auth-file",
        "tokens.csv",
        "--anonymous-auth",
        "--webhook-callers",
        "group:system:unauthenticated",
    ]
    with running_server(tmp_path, args) as server, server.client(cert=None) as c:
        assert c.post("/authorize", json=sar()).status_code == 200  # system:anonymous, system:unauthenticated
        assert c.post("/authorize", json=sar(), headers=bearer("wrong")).status_code == 401
        response = c.post("/authorize", json=sar(), headers=bearer(TOKEN_ALICE))  # alice is not anonymous
        assert response.status_code == 403
        assert response.json()["message"] == 'forbidden: User "alice" cannot post path "/authorize"'
        log = server.log()
    assert TOKEN_ALICE not in log


def test_basic_auth_file_hot_reload(setup: Setup) -> None:
    path = setup.workdir / "basic.csv"
    original = path.read_text()
    server = setup.server

    def works(password: str) -> bool:
        with server.client(cert=None, headers=basic("bob", password)) as c:
            return c.post("/authenticate", json={}).status_code != 401

    try:
        path.write_text(original.replace(PASSWORD_BOB, PASSWORD_BOB + "-rotated"))
        wait_for(lambda: works(PASSWORD_BOB + "-rotated"))
        assert not works(PASSWORD_BOB)
        path.write_text('"$scrypt$broken",bob,uid-bob\n')
        with server.client(cert=None) as c:
            wait_for(lambda: "lastError" in c.get("/readyz").json()["checks"]["basic-auth file"])
        assert works(PASSWORD_BOB + "-rotated")  # the last good version is still in force
    finally:
        path.write_text(original)
        wait_for(lambda: works(PASSWORD_BOB))
