"""Strict request parsing (finding 9) on a real `gatekeeper serve` over real TLS.

Each quirk the attacker found, sent as they sent it, byte for byte where it matters (a raw TLS
socket for paths and Host headers): a path with a newline, a trailing slash with a foreign Host,
review bodies without Content-Type application/json, repeated keys, `Bearer  token` with two
spaces, and a certificate CN that holds a newline.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gatekeeper import pki
from tests.support.certs import write_pair
from tests.support.quota_reviews import NAMESPACE, state
from tests.support.server import Server, running_server

TOKEN = "tok-strict-4b1e0c9d7a2f6385"
FORGED_LINE = "2026-01-01 00:00:00,000 INFO gatekeeper.caller: FORGED"
JSON = {"Content-Type": "application/json"}
POLICY = json.dumps({"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy",
                     "spec": {"user": "alice", "namespace": NAMESPACE, "resource": "pods"}}) + "\n"
SAR = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
    "user": "alice", "resourceAttributes": {"namespace": NAMESPACE, "verb": "get", "resource": "pods"}}}
TOKEN_REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "x"}}
NAMESPACE_CONNECT = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
    "uid": "ns-connect", "name": NAMESPACE, "operation": "CONNECT",
    "kind": {"group": "", "version": "v1", "kind": "Namespace"},
    "resource": {"group": "", "version": "v1", "resource": "namespaces"}}}
BODIES: dict[str, Any] = {"/authorize": SAR, "/authenticate": TOKEN_REVIEW, "/mutate": NAMESPACE_CONNECT,
                          "/validate": NAMESPACE_CONNECT, "/admit": NAMESPACE_CONNECT}


def serve_args(workdir: Path, *extra: str) -> list[str]:
    (workdir / "abac.jsonl").write_text(POLICY)
    (workdir / "state.yaml").write_text(state({"requests.cpu": "1"}))
    (workdir / "tokens.csv").write_text(f"{TOKEN},token-caller,uid-t\n")
    return ["--authorization-policy-file", "abac.jsonl", "--state", "state.yaml", "--store", "memory://",
            "--enable-admission-plugins", "ResourceQuota", "--token-auth-file", "tokens.csv",
            "--webhook-callers", "user:kube-apiserver,user:token-caller",
            "--audit-log-path", "audit.log", *extra]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("strict")
    with running_server(workdir, serve_args(workdir)) as running:
        yield running


def raw(server: Server, head: str, body: bytes = b"", cert: bool = True) -> tuple[int, str, bytes]:
    """Send `head` (request line and headers, without the blank line) as is; (status, head, body)."""
    port = int(server.url.rsplit(":", 1)[1])
    context = server.tls_context(server.default_cert if cert else None)
    request = f"{head}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    response_head, _, response_body = answer.partition(b"\r\n\r\n")
    text = response_head.decode("latin-1")
    return int(text.split(" ", 2)[1]), text, response_body


def audited_users(server: Server, marker: str) -> list[str]:
    """Users of the audit log's lines, once the line for SAR user `marker` has been written."""
    path = server.log_path.parent / "audit.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        users = [line.get("user") or "" for line in lines]
        if marker in users:
            return users
        time.sleep(0.05)
    raise AssertionError(f"{marker} never reached the audit log")


@pytest.mark.parametrize("path", ["/authorize%0a", "/authorize%0d%0a", "/authorize%00",
                                  "/authorize%0aINFO%20x", "/admit%0a", "/authenticate%09"])
def test_a_path_with_a_control_character_is_404_and_reaches_no_handler(server: Server, path: str) -> None:
    probe = json.dumps({**SAR, "spec": {**SAR["spec"], "user": f"probe{path}"}}).encode()
    for cert in (True, False):
        status, _, body = raw(server, f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      "Content-Type: application/json", probe, cert=cert)
        assert status == 404, body
        assert json.loads(body) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                    "message": "Not Found", "reason": "NotFound", "code": 404}
    with server.client() as c:  # a decision after the probes: once it is audited, theirs would be too
        marker = f"marker{path}"
        assert c.post("/authorize", json={**SAR, "spec": {**SAR["spec"], "user": marker}}).status_code == 200
    assert f"probe{path}" not in audited_users(server, marker)


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/authorize/"), ("POST", "/admit/"), ("GET", "/metrics/"), ("GET", "/quota/"),
])
def test_a_trailing_slash_is_404_never_a_redirect_to_the_callers_host(
    server: Server, method: str, path: str
) -> None:
    for cert in (False, True):
        status, head, _ = raw(server, f"{method} {path} HTTP/1.1\r\nHost: evil.example\r\n"
                                      "Content-Type: application/json", b"{}", cert=cert)
        assert status == 404, head
        assert "location" not in head.lower() and "evil.example" not in head


REFUSED_TYPES = [None, "text/plain", "application/x-www-form-urlencoded", "application/yaml",
                 "application/json-seq", "application/json; charset=latin-1", "text/json"]
ACCEPTED_TYPES = ["application/json", "application/json; charset=utf-8", 'Application/JSON;charset="UTF-8"']


@pytest.mark.parametrize("path", list(BODIES))
def test_review_bodies_need_content_type_application_json(server: Server, path: str) -> None:
    body = json.dumps(BODIES[path]).encode()
    with server.client() as c:
        for content_type in REFUSED_TYPES:
            headers = {"Content-Type": content_type} if content_type else {}
            response = c.post(path, content=body, headers=headers)
            assert response.status_code == 415, (content_type, response.text)
            status = response.json()
            assert status["reason"] == "UnsupportedMediaType" and status["code"] == 415
            got = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
            expected = f"unsupported media type: got {got}, expected application/json (UTF-8)"
            assert status["message"] == expected
        for content_type in ACCEPTED_TYPES:
            response = c.post(path, content=body, headers={"Content-Type": content_type})
            assert response.status_code == 200, (content_type, response.text)
    with server.client(cert=None) as anonymous:  # authentication comes first
        assert anonymous.post(path, content=body, headers={"Content-Type": "text/plain"}).status_code == 401


def pod_review_text(obj: str, uid: str = '"dup-1"') -> bytes:
    return ('{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":' + uid + ','
            '"name":"web","namespace":"team-a","operation":"CREATE",'
            '"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},'
            '"userInfo":{"username":"alice"},' + obj + ',"dryRun":true}}').encode()


def pod(resources: str, init: str = "") -> str:
    init_containers = f',"initContainers":[{{"name":"init","resources":{init}}}]' if init else ""
    return ('{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"team-a"},'
            '"spec":{"containers":[{"name":"app","resources":' + resources + '}]' + init_containers + '}}')


def test_a_repeated_object_key_merges_as_go_decodes_it(server: Server) -> None:
    with server.client() as c:
        sar = (b'{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"alice",'
               b'"resourceAttributes":{"namespace":"team-a","verb":"get"},"resourceAttributes":{"resource":"pods"}}}')
        assert c.post("/authorize", content=sar, headers=JSON).json()["status"]["allowed"] is True
        # requests is a map: the second "resources" adds memory to the cpu of the first (2 > quota 1)
        merged = pod('{"requests":{"cpu":"2"}},"resources":{"requests":{"memory":"1Gi"}}')
        answer = c.post("/validate", content=pod_review_text('"object":' + merged, '"first","uid":"second"'),
                        headers=JSON).json()["response"]
        assert answer["uid"] == "second"  # a repeated string: the last one
        assert answer["allowed"] is False and "exceeded quota: compute" in answer["status"]["message"], answer
        # request.object is a RawExtension: a repeated one replaces the first, initContainers and all
        replaced = ('"object":' + pod('{"requests":{"cpu":"100m"}}', init='{"requests":{"cpu":"2"}}')
                    + ',"object":' + pod('{"requests":{"cpu":"100m"}}'))
        answer = c.post("/validate", content=pod_review_text(replaced), headers=JSON).json()["response"]
        assert answer["allowed"] is True, answer


@pytest.mark.parametrize(("body", "message"), [
    (pod_review_text('"object":null', '"a","uid":null'),
     "key 'request.uid' is given twice, the second time as null"),
    (pod_review_text('"object":{"kind":"Pod","kind":{"x":1}}'),
     "key 'request.object.kind' is given twice, as string and then as object"),
])
def test_a_repeated_key_go_would_read_by_its_type_is_400(server: Server, body: bytes, message: str) -> None:
    with server.client() as c:
        response = c.post("/admit", content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json()["message"] == f"request body: {message}"


@pytest.mark.parametrize(("header", "status"), [
    (f"Bearer {TOKEN}", 200), (f"bearer {TOKEN}", 200), (f"BEARER {TOKEN}", 200),
    (f"Bearer  {TOKEN}", 401), (f"Bearer   {TOKEN}", 401), ("Bearer ", 401), ("Bearer", 401),
    (f"Bearer {TOKEN} extra", 401), (f"Bearer\t{TOKEN}", 401), (f"Bearer {TOKEN}  ", 200),
])
def test_the_bearer_scheme_is_parsed_as_kube_apiserver_does(server: Server, header: str, status: int) -> None:
    answer, _, body = raw(server, f"POST /authorize HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  f"Content-Type: application/json\r\nAuthorization: {header}",
                          json.dumps(SAR).encode(), cert=False)  # as sent: httpx would refuse "Bearer "
    assert answer == status, (header, body)


def newline_cn_certificate(server: Server, directory: Path) -> tuple[str, str]:
    """CA-signed, with a CN holding a forged log line, and two UIDs: the app refuses it, naming it."""
    ca = pki.load(pki.pair(server.cert_dir, pki.CA_NAME))
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"evil\n{FORGED_LINE}"),
        x509.NameAttribute(pki.UID_OID, "u1"), x509.NameAttribute(pki.UID_OID, "u2"),
    ])
    return write_pair(pki.issue(ca, subject, ExtendedKeyUsageOID.CLIENT_AUTH), directory, "newline-cn")


def test_a_newline_in_a_certificate_cn_forges_no_log_line(server: Server, tmp_path: Path) -> None:
    with server.client(cert=newline_cn_certificate(server, tmp_path)) as c:
        assert c.post("/authorize", json=SAR).status_code == 401
    with server.client_as("mallory\nINFO gatekeeper.caller: FORGED-TOO") as c:
        assert c.post("/authorize", json=SAR).status_code == 403
    lines = server.log().splitlines()
    assert not [line for line in lines if line.startswith(("2026-01-01", "INFO gatekeeper.caller: FORGED"))]
    assert any("401 POST /authorize" in line and "evil\\n2026-01-01" in line for line in lines)
    assert any("403 POST /authorize" in line and "mallory\\nINFO" in line for line in lines)


def test_json_logs_hold_no_control_character_either(tmp_path: Path) -> None:
    with running_server(tmp_path, serve_args(tmp_path, "--log-format", "json")) as running:
        with running.client(cert=newline_cn_certificate(running, tmp_path)) as c:
            assert c.post("/authorize", json=SAR).status_code == 401
        log = running.log()
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    refused = [e["message"] for e in entries if e["message"].startswith("401 POST /authorize")]
    assert refused and all("\n" not in m and "evil\\n2026" in m for m in refused)
    assert all(not any(ord(ch) < 0x20 for ch in e["message"]) for e in entries)


def test_the_audit_log_stays_one_json_object_per_line_for_every_reader(server: Server) -> None:
    name = 'mallory\u2028{"forged": true}\x85\x7f'
    with server.client_as(name) as c:
        assert c.post("/authorize", json=SAR).status_code == 403
    with server.client() as c:
        marker = {**SAR, "spec": {**SAR["spec"], "user": "after-u2028"}}
        assert c.post("/authorize", json=marker).status_code == 200
    audited_users(server, "after-u2028")
    text = (server.log_path.parent / "audit.log").read_text()
    entries = [json.loads(line) for line in text.splitlines()]  # splitlines breaks on U+2028 and \x85
    assert any((entry.get("caller") or {}).get("user") == name for entry in entries)
    assert "\u2028" not in text and "\x85" not in text and "\x7f" not in text


@pytest.mark.parametrize("path", list(BODIES))
def test_a_client_that_leaves_mid_body_is_logged_not_a_500(server: Server, path: str) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    context = server.tls_context(server.default_cert)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += "Content-Length: 1000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        tls.sendall(head.encode() + b'{"apiVersion":')
        time.sleep(0.2)
    expected = f"POST {path}: the client closed the connection before its body was complete"
    deadline = time.monotonic() + 10
    while expected not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert expected in server.log()
    assert "Traceback" not in server.log()
    assert raw(server, "GET /healthz HTTP/1.1\r\nHost: x")[0] == 200
