"""The HTTP fuzz run: the inputs of tests/fuzz/inputs.py sent to one real `gatekeeper serve` over TLS.

Input number i of seed s is rebuilt from (s, i) alone, whatever the thread that sent it. Each
sender thread keeps one keep-alive connection per client certificate it presents (kube-apiserver,
alice, none), as kube-apiserver keeps its connections to a webhook. One input in twenty also goes
out as raw bytes on a fresh TLS connection with its request head mangled (bare LF line ends,
header lines without a colon, duplicate or conflicting Content-Length and Transfer-Encoding,
obsolete line folding, absolute-form targets, HTTP/1.0 and 2.0, pipelining, heads of up to 2 MiB)
so the HTTP parser is fuzzed too; those answers need only be below 500 (the parser's own 400 is
plain text) or a closed connection.

Every other answer must pass inputs.check (below 500, JSON, a Status naming the problem on
refusal, no redirect, no traceback) within the timeout (a hang is a failure). At the end the
server must still be healthy and its log must hold no traceback and no plugin read failure.

    python -m tests.fuzz.http --count 100000 --seed 1 [--start 0] [--threads 4] [--workers 2]
    python -m tests.fuzz.http --replay 1234 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.fuzz.inputs import Answer, Input, Report, Seed, check, make, seeds, server_args
from tests.support.server import Server, running_server

__all__ = ["fuzz", "seeds", "server_args", "server_problems"]

TIMEOUT = 30.0
CHUNK = 65536
WIRE_SHARE = 0.05
PROGRESS_EVERY = 5000


class Sender:
    """One thread's connections: a keep-alive client per certificate, made when first needed."""

    def __init__(self, server: Server, alice: tuple[str, str]) -> None:
        self.server = server
        self.certs = {"kube-apiserver": server.default_cert, "alice": alice, "none": None}
        self.clients: dict[str, httpx.Client] = {}

    def client(self, cert: str) -> httpx.Client:
        if cert not in self.clients:
            context = self.server.tls_context(self.certs[cert])
            self.clients[cert] = httpx.Client(base_url=self.server.url, verify=context, timeout=TIMEOUT)
        return self.clients[cert]

    def send(self, request: Input) -> Answer:
        client = self.client(request.cert)
        raw_path = request.target.encode("latin-1") + (b"?" + request.query.encode("latin-1") if request.query
                                                       else b"")
        url = client.base_url.copy_with(raw_path=raw_path)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers]
        body = request.body
        content: bytes | Iterator[bytes] = (
            iter([body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]) if request.chunked else body
        )
        response = client.request(request.method, url, content=content, headers=headers)
        return Answer(response.status_code, response.headers.get("content-type", ""), response.content)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


PARSER_REFUSAL = b"Invalid HTTP request received."  # uvicorn's 400 for what its parser cannot read


def sendable(request: Input) -> bool:
    """httpx sends only ASCII targets and header values without control characters or whitespace
    at either end; anything else goes out as raw bytes instead."""
    if not request.target.startswith("/") or not (request.target + request.query).isascii():
        return False
    return all(v == v.strip(" \t") and v.isprintable() for _, v in request.headers)


def one(sender: Sender, request: Input) -> tuple[int, str | None]:
    try:
        answer = sender.send(request)
    except httpx.TimeoutException:
        return 0, f"no answer within {TIMEOUT:.0f} s (hang)"
    except httpx.TransportError as exc:
        # A body over the limit may be refused before it is all sent; the server then closes.
        if len(request.body) > 3 * 1024 * 1024:
            return -1, None
        return -1, f"transport error: {exc!r}"
    if answer.status == 400 and answer.body == PARSER_REFUSAL:
        return 400, None
    return answer.status, check(answer, request.method)


# -- the request head, mangled ---------------------------------------------------------------


def wire_bytes(request: Input, rng: random.Random, mangle: bool = True) -> tuple[str, bytes]:
    """The request as bytes with one mutation of its head (none unless `mangle`); the body stays
    whole (no input leaves the server waiting for bytes that never come: that is a timeout's
    test, not a fuzzer's)."""
    target = request.target + (f"?{request.query}" if request.query else "")
    lines = [f"{request.method} {target} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in request.headers if k != "host"]
    length = f"content-length: {len(request.body)}"
    name = rng.choice(("bare-lf", "no-colon", "space-before-colon", "fold", "nul", "dup-length",
                       "length-and-chunked", "absolute-form", "http10", "http20", "lower-method",
                       "double-space", "pipelined", "big-head", "many-headers", "bad-chunk", "expect")
                      ) if mangle else "as-is"
    body = request.body
    end = "\r\n"
    if name == "bare-lf":
        end = "\n"
    elif name == "no-colon":
        lines.append("x-broken-header-line")
    elif name == "space-before-colon":
        lines.append("content-type : application/json")
    elif name == "fold":
        lines.append("x-folded: a\r\n  b")
    elif name == "nul":
        lines.append("x-nul: a\x00b")
    elif name == "dup-length":
        lines += [length, f"content-length: {max(0, len(body) - 1)}"]
    elif name == "length-and-chunked":
        lines += [length, "transfer-encoding: chunked"]
    elif name == "absolute-form":
        lines[0] = f"{request.method} https://evil.example{target} HTTP/1.1"
    elif name in ("http10", "http20"):
        lines[0] = lines[0][: -len("1.1")] + ("1.0" if name == "http10" else "2.0")
    elif name == "lower-method":
        lines[0] = lines[0].lower()
    elif name == "double-space":
        lines[0] = lines[0].replace(" ", "  ", 1)
    elif name == "big-head":
        lines.append("x-big: " + "b" * rng.choice((8_000, 100_000, 1_048_576, 2_097_152)))
    elif name == "many-headers":
        lines += [f"x-h-{i}: v" for i in range(rng.choice((100, 1000, 5000)))]
    elif name in ("bad-chunk", "expect"):
        pass
    if name == "bad-chunk":
        lines.append("transfer-encoding: chunked")
        body = rng.choice((b"zz\r\nabc\r\n0\r\n\r\n", b"3;ext=1\r\nabc\r\n0\r\n\r\n", b"-1\r\n\r\n",
                           b"ffffffffffffffffff\r\n0\r\n\r\n", b"0\r\n\r\n"))
    elif name not in ("dup-length", "length-and-chunked"):
        lines.append(length)
    if name == "expect":
        lines.append("expect: 100-continue")
    lines.append("connection: close")
    head = end.join(lines).encode("latin-1") + (end + end).encode()
    wire = head + body
    if name == "pipelined":
        wire = wire.replace(b"connection: close", b"connection: keep-alive", 1) + wire
    return name, wire


def wire_one(
    server: Server, request: Input, rng: random.Random, mangle: bool = True
) -> tuple[int, str | None]:
    name, wire = wire_bytes(request, rng, mangle)
    context = server.tls_context(server.default_cert if request.cert == "kube-apiserver" else None)
    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(wire)
            head = _read_head(tls)
    except TimeoutError:
        return 0, f"no answer within {TIMEOUT:.0f} s (hang), wire mutation {name}"
    except (OSError, ssl.SSLError):
        return -1, None  # closed while we sent or read: a refusal the parser is allowed
    if not head:
        return -1, None
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return -1, f"answer is not HTTP: {head[:80]!r}, wire mutation {name}"
    if status >= 500:
        return status, f"HTTP {status}, wire mutation {name}"
    if b"Traceback" in head:
        return status, f"traceback in response, wire mutation {name}"
    return status, None


def _read_head(tls: ssl.SSLSocket) -> bytes:
    """The head of the first final answer (a 100 Continue before it is passed over)."""
    data = b""
    while True:
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = tls.recv(65536)
            if not chunk:
                return data
            data += chunk
        if not data.startswith(b"HTTP/1.1 100"):
            return data
        data = data.split(b"\r\n\r\n", 1)[1]


# -- the run ---------------------------------------------------------------------------------


def fuzz(server: Server, count: int, seconds: float, seed: int = 1, threads: int = 4, start: int = 0,
         quiet: bool = True) -> Report:
    corpus = seeds()
    report = Report(start=start)
    lock = threading.Lock()
    counter = iter(range(start, start + count))
    started = time.monotonic()
    deadline = started + seconds
    alice = server.client_cert("alice", ["dev"])

    def worker() -> None:
        sender = Sender(server, alice)
        try:
            for index in counter:
                if time.monotonic() > deadline:
                    return
                try:
                    request, (status, problem) = send_input(server, sender, corpus, seed, index)
                except Exception as exc:  # the fuzzer's own bug: say so, and go on
                    request, status, problem = make(seed, index, corpus), -2, f"fuzzer error: {exc!r}"
                with lock:
                    report.add(request, status, problem)
                    if not quiet and report.inputs % PROGRESS_EVERY == 0:
                        _progress(report, seed, started)
        finally:
            sender.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    report.seconds = time.monotonic() - started
    return report


def send_input(server: Server, sender: Sender, corpus: list[Seed], seed: int, index: int
               ) -> tuple[Input, tuple[int, str | None]]:
    request = make(seed, index, corpus)
    wire = random.Random(f"{seed}:{index}:wire")
    if wire.random() < WIRE_SHARE or not sendable(request):
        return request, wire_one(server, request, wire, mangle=sendable(request))
    return request, one(sender, request)


def _progress(report: Report, seed: int, started: float) -> None:
    rate = report.inputs / (time.monotonic() - started)
    print(f"seed {seed}: {report.inputs} inputs from {report.start} ({rate:.0f}/s), failures "
          f"{len(report.failures)}", file=sys.stderr, flush=True)


def replay(server: Server, seed: int, index: int) -> int:
    request = make(seed, index, seeds())
    print(f"input {index}: {request.describe()}, chunked={request.chunked}, headers={request.headers}")
    print(request.body[:2000].decode("latin-1"))
    sender = Sender(server, server.client_cert("alice", ["dev"]))
    _, (status, problem) = send_input(server, sender, seeds(), seed, index)
    sender.close()
    print("status", status, "problem", problem)
    print(server.log()[-6000:])
    return 0


def server_problems(server: Server) -> list[str]:
    problems = []
    with server.client() as client:
        if client.get("/healthz").status_code != 200:
            problems.append("server not healthy after fuzzing")
    log = server.log()
    unread = [line for line in log.splitlines() if "could not read the object" in line]
    return problems + sorted(set(tracebacks(log))) + sorted(set(unread))


def tracebacks(log: str) -> list[str]:
    """Each traceback in the log, as its last frame and its exception line."""
    found = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = next((j for j in range(i + 1, len(lines)) if not lines[j].startswith(" ")), len(lines) - 1)
            frames = [lines[j].strip() for j in range(i + 1, end) if lines[j].strip().startswith("File")]
            frame = frames[-1] if frames else ""
            found.append(f"{frame}: {lines[end]}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--start", type=int, default=0, help="first input number (resume a run)")
    parser.add_argument("--seconds", type=float, default=float("inf"), help="stop after this long")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="serve --workers")
    parser.add_argument("--replay", type=int, help="send only input number N and show the answer")
    parser.add_argument("--keep-log", type=Path, metavar="PATH", help="copy the server's log here at the end")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        serve = [*server_args(Path(tmp)), "--workers", str(args.workers)]
        with running_server(Path(tmp), serve) as server:
            if args.replay is not None:
                return replay(server, args.seed, args.replay)
            report = fuzz(server, args.count, args.seconds, args.seed, args.threads, args.start, quiet=False)
            report.tracebacks = server_problems(server)
            if args.keep_log:
                shutil.copyfile(server.log_path, args.keep_log)
    print(json.dumps(report.summary(), indent=1))
    return 0 if report.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
