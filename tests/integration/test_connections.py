"""Connection hygiene of a real `gatekeeper serve` over TLS on loopback (finding 4, and TLS 1.2's suites).

Each test reproduces what an attacker did against a server without limits (a partial request
head held open, a TLS connection that sends nothing, an 8 MiB header, ten unfinished 20 MiB
headers, slow connections filling the file descriptors) and asserts the bounded behaviour.
The timeouts are shortened by flag; the bounds on time and memory are generous.
"""

from __future__ import annotations

import contextlib
import json
import re
import resource
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.server import Server, running_server
from tests.support.waiting import wait_for

HEADER_TIMEOUT = 2.0
IDLE_TIMEOUT = 3.0
HANDSHAKE_TIMEOUT = 2.0
MARGIN = 10.0  # on top of a timeout, before a test decides the connection was never closed
BASE_ARGS = ["--store", "memory://", "--state", "state.json", "--authorization-policy-file", "policy.jsonl"]
POLICY = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"*"}}\n'
)


def _args(*extra: str) -> list[str]:
    return [*BASE_ARGS, *extra]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = _workdir(tmp_path_factory, "connections")
    args = _args("--request-header-timeout", str(HEADER_TIMEOUT), "--idle-timeout", str(IDLE_TIMEOUT),
                 "--tls-handshake-timeout", str(HANDSHAKE_TIMEOUT))
    with running_server(workdir, args) as running:
        yield running
    assert "Traceback" not in running.log()


def _workdir(factory: pytest.TempPathFactory, name: str) -> Path:
    workdir = factory.mktemp(name)
    (workdir / "state.json").write_text('{"apiVersion": "v1", "kind": "List", "items": []}')
    (workdir / "policy.jsonl").write_text(POLICY)
    return workdir


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def tls_connect(server: Server, context: ssl.SSLContext | None = None) -> ssl.SSLSocket:
    """A TLS connection as kube-apiserver makes it (its dev client certificate), handshake done."""
    context = context or server.tls_context(server.default_cert)
    raw = socket.create_connection(("127.0.0.1", _port(server)), timeout=10)
    return context.wrap_socket(raw, server_hostname="localhost")


def seconds_until_closed(sock: socket.socket, limit: float) -> float | None:
    """How long until the server closes `sock` (EOF or reset); None if it is still open after `limit`."""
    start = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except (ConnectionError, ssl.SSLError):
        pass
    return time.monotonic() - start


def read_response(sock: ssl.SSLSocket) -> bytes:
    """One whole response (head and Content-Length body) from a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def stream_head(sock: ssl.SSLSocket, start: bytes, total: int, end: bytes = b"") -> tuple[int, bytes]:
    """Send `start`, then header bytes up to `total` and `end`, unless the server answers first (or
    closes); then read until the server closes. Returns (header bytes sent, what came back)."""
    sent, chunk = 0, b"a" * 65536
    try:
        sock.sendall(start)
        while sent < total and not _answered(sock):
            sock.sendall(chunk)
            sent += len(chunk)
        if sent >= total:
            sock.sendall(end)
    except (ConnectionError, ssl.SSLError):
        pass
    return sent, _read_until_closed(sock)


def _answered(sock: ssl.SSLSocket) -> bool:
    """Whether application data waits (TLS 1.3 session tickets are readable too, but are not)."""
    if not select.select([sock], [], [], 0)[0] and not sock.pending():
        return False
    sock.setblocking(False)
    try:
        sock._gatekeeper_first = sock.recv(65536)  # type: ignore[attr-defined]
        return True
    except ssl.SSLWantReadError:
        return False
    finally:
        sock.setblocking(True)


def _read_until_closed(sock: ssl.SSLSocket) -> bytes:
    data: bytes = getattr(sock, "_gatekeeper_first", b"")
    sock.settimeout(10)
    with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def assert_431(response: bytes, limit: int) -> None:
    assert response.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), response[:200]
    body = json.loads(response.partition(b"\r\n\r\n")[2])
    assert body["kind"] == "Status" and body["code"] == 431
    assert body["message"] == f"request header fields are larger than {limit} bytes"


def test_a_partial_request_head_is_closed_after_the_header_timeout(server: Server) -> None:
    with tls_connect(server) as sock:
        sock.sendall(b"POST /authorize HTTP/1.1\r\nHost: gatekeeper\r\nContent-Type: appl")
        elapsed = seconds_until_closed(sock, HEADER_TIMEOUT + MARGIN)
    assert elapsed is not None, "a partial head kept its connection open"


def test_a_tls_connection_that_sends_nothing_is_closed(server: Server) -> None:
    with tls_connect(server) as sock:
        assert seconds_until_closed(sock, HEADER_TIMEOUT + MARGIN) is not None


def test_a_tcp_connection_that_never_starts_tls_is_closed_after_the_handshake_timeout(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as raw:
        assert seconds_until_closed(raw, HANDSHAKE_TIMEOUT + MARGIN) is not None


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(server: Server) -> None:
    with tls_connect(server) as sock:
        for _ in range(2):  # keep-alive works: the second request rides the same connection
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gatekeeper\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        assert seconds_until_closed(sock, IDLE_TIMEOUT + MARGIN) is not None


def test_a_slow_next_request_on_a_keep_alive_connection_meets_the_header_timeout(server: Server) -> None:
    with tls_connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gatekeeper\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next head starts, and stalls
        assert seconds_until_closed(sock, HEADER_TIMEOUT + MARGIN) is not None


def test_an_8_mib_header_is_answered_431_never_200(server: Server) -> None:
    with tls_connect(server) as sock:
        start = b"GET /healthz HTTP/1.1\r\nHost: gatekeeper\r\nX-Big: "
        _, response = stream_head(sock, start, 8 << 20, end=b"\r\nConnection: close\r\n\r\n")
    assert_431(response, 1 << 20)
    assert b" 200 " not in response


def test_a_head_just_under_the_limit_is_answered(server: Server) -> None:
    with tls_connect(server) as sock:
        filler = b"X-Pad: " + b"p" * ((1 << 20) - 1024) + b"\r\n"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gatekeeper\r\n" + filler + b"\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_ten_unfinished_20_mib_headers_are_cut_at_the_limit_and_memory_stays_flat(server: Server) -> None:
    pid = server.process.pid
    baseline = _rss_bytes(pid)
    peak = [baseline]
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(pid, peak, stop))
    sampler.start()
    results: list[tuple[int, bytes]] = []
    try:
        _in_threads(10, lambda: results.append(_unfinished_head(server)))
    finally:
        stop.set()
        sampler.join()
    assert len(results) == 10
    for sent, response in results:
        assert sent < 20 << 20, "the server read a whole 20 MiB head"
        assert_431(response, 1 << 20)
    growth = peak[0] - baseline
    assert growth < 64 << 20, f"RSS grew by {growth >> 20} MiB"  # unlimited, it grew by ~200 MiB


def _unfinished_head(server: Server) -> tuple[int, bytes]:
    with tls_connect(server) as sock:
        return stream_head(sock, b"GET /healthz HTTP/1.1\r\nHost: gatekeeper\r\nX-Big: ", 20 << 20)


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _sample_rss(pid: int, peak: list[int], stop: threading.Event) -> None:
    while not stop.wait(0.01):
        peak[0] = max(peak[0], _rss_bytes(pid))


def _in_threads(count: int, work: Callable[[], object]) -> None:
    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


def test_tls_1_2_offers_only_aead_suites(server: Server) -> None:
    for cbc in ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA"):
        context = _tls12_client(server, cbc)
        with pytest.raises(ssl.SSLError):
            tls_connect(server, context).close()
    for aead in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                 "ECDHE-ECDSA-CHACHA20-POLY1305"):
        with tls_connect(server, _tls12_client(server, aead)) as sock:
            assert sock.version() == "TLSv1.2" and sock.cipher()[0] == aead  # type: ignore[index]
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gatekeeper\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    with tls_connect(server) as sock:
        assert sock.version() == "TLSv1.3"
    with server.client() as client:  # the failed handshakes cost nothing
        assert client.get("/healthz").status_code == 200
    assert "Traceback" not in server.log()


def _tls12_client(server: Server, cipher: str) -> ssl.SSLContext:
    context = server.tls_context(server.default_cert)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(f"{cipher}:@SECLEVEL=0")  # SHA-1 suites too, to offer what an old client would
    return context


def open_slow_connections(server: Server, count: int) -> list[ssl.SSLSocket]:
    """Connections that finished TLS and sent part of a request head, as the attacker's."""
    slow = []
    for _ in range(count):
        sock = tls_connect(server)
        sock.sendall(b"POST /authorize HTTP/1.1\r\nHost: gatekeeper\r\n")
        slow.append(sock)
    return slow


def still_open(sockets: list[ssl.SSLSocket]) -> int:
    return sum(1 for sock in sockets if _is_open(sock))


def _is_open(sock: ssl.SSLSocket) -> bool:
    if sock.fileno() < 0:
        return False
    if not select.select([sock], [], [], 0)[0] and not sock.pending():
        return True
    sock.setblocking(False)
    try:
        if sock.recv(65536) == b"":
            sock.close()
            return False
        return True
    except ssl.SSLWantReadError:  # a session ticket, nothing else
        return True
    except (ConnectionError, ssl.SSLError):
        sock.close()
        return False
    finally:
        if sock.fileno() >= 0:
            sock.setblocking(True)


def assert_kube_apiserver_gets_through(server: Server) -> None:
    with server.client() as client:  # a fresh connection, as kube-apiserver opens when its pool is empty
        response = client.get("/healthz")
    assert response.status_code == 200


def test_at_the_connection_cap_a_new_caller_displaces_the_slowest(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cap = 20
    workdir = _workdir(tmp_path_factory, "cap")
    args = _args("--max-open-connections", str(cap), "--request-header-timeout", "60")
    with running_server(workdir, args) as server:
        slow = open_slow_connections(server, 2 * cap)
        try:
            wait_for(lambda: still_open(slow[:cap]) == 0, timeout=10)  # the longest-waiting went first
            assert still_open(slow[cap:]) == cap
            assert_kube_apiserver_gets_through(server)  # long before the 60 s header timeout
            wait_for(lambda: still_open(slow[cap:]) == cap - 1, timeout=10)  # it took the oldest's place
            assert still_open(slow[cap + 1 :]) == cap - 1
        finally:
            for sock in slow:
                sock.close()
        assert "--max-open-connections): closed" in server.log()


def test_worker_processes_enforce_the_same_limits(tmp_path_factory: pytest.TempPathFactory) -> None:
    """--workers: the protocol with its limits and the loop with its handshake timeout reach the
    worker processes (uvicorn pickles them into each)."""
    workdir = _workdir(tmp_path_factory, "workers")
    args = _args("--workers", "2", "--request-header-timeout", str(HEADER_TIMEOUT),
                 "--tls-handshake-timeout", str(HANDSHAKE_TIMEOUT), "--max-request-header-bytes", "4096")
    with running_server(workdir, args, ready_timeout=60) as server:
        partial = [tls_connect(server) for _ in range(4)]  # connections land on either worker
        for sock in partial:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        for sock in partial:
            with sock:
                assert seconds_until_closed(sock, HEADER_TIMEOUT + MARGIN) is not None
        for _ in range(4):
            with tls_connect(server) as sock:
                start = b"GET /healthz HTTP/1.1\r\nHost: gatekeeper\r\nX-Big: "
                assert_431(stream_head(sock, start, 1 << 20, end=b"\r\n\r\n")[1], 4096)
        with socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as raw:
            assert seconds_until_closed(raw, HANDSHAKE_TIMEOUT + MARGIN) is not None
        assert "Traceback" not in server.log()


def _open_file_limit(soft: int, hard: int | None = None) -> Callable[[], None]:
    def apply() -> None:
        current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, current_hard if hard is None else hard))

    return apply


def _limits_of(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open file limit for {pid}")


def test_111_slow_connections_under_a_128_descriptor_limit_do_not_lock_kube_apiserver_out(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The finding: with 128 descriptors, 111 slow connections left none for kube-apiserver."""
    workdir = _workdir(tmp_path_factory, "fd128")
    args = _args("--request-header-timeout", "60")
    with running_server(workdir, args, preexec_fn=_open_file_limit(128, 128)) as server:
        assert _limits_of(server.process.pid) == (128, 128)  # nothing to raise it to
        assert "--max-open-connections 1000 lowered to 64" in server.log()
        slow = open_slow_connections(server, 111)
        try:
            wait_for(lambda: still_open(slow) <= 64, timeout=10)
            for _ in range(3):
                assert_kube_apiserver_gets_through(server)
        finally:
            for sock in slow:
                sock.close()
        assert "Traceback" not in server.log()


def test_serve_raises_its_open_file_limit_to_the_hard_limit(tmp_path_factory: pytest.TempPathFactory) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"the hard open file limit here is {hard}: nothing to raise to")
    workdir = _workdir(tmp_path_factory, "rlimit")
    with running_server(workdir, BASE_ARGS, preexec_fn=_open_file_limit(256)) as server:
        soft, after_hard = _limits_of(server.process.pid)
        assert soft == after_hard and soft > 256
        assert f"open file limit raised from 256 to {soft}" in server.log()


@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [
        ("--max-request-header-bytes", "10",
         "--max-request-header-bytes: Input should be greater than or equal to 1024"),
        ("--idle-timeout", "0", "--idle-timeout: Input should be greater than 0"),
        ("--max-open-connections", "0", "--max-open-connections: Input should be greater than or equal to 1"),
    ],
)
def test_a_bad_limit_flag_is_named_without_a_traceback(
    tmp_path: Path, flag: str, value: str, words: str
) -> None:
    (tmp_path / "state.json").write_text('{"kind":"List","items":[]}')
    (tmp_path / "policy.jsonl").write_text(POLICY)
    result = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "serve", *BASE_ARGS, flag, value],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert words in result.stderr and "Traceback" not in result.stderr, result.stderr
