"""The in-process fuzz run: the inputs of tests/fuzz/inputs.py through the real app, without TLS.

The app is the one `gatekeeper serve` runs: its flags go through serve's own parser,
settings_from and with_dev_certificates (dev PKI in a temporary directory), then create_app, and
its lifespan runs (the file poller included). Each input becomes one ASGI HTTP call, with the
connection's client certificate in the scope exactly where serve's TLS protocol puts it, so the
caller is authenticated and authorized by the real code; nothing is mocked. What TLS and the
HTTP parser would add is the HTTP run's job (tests/fuzz/http.py); this one is for volume.

Every answer must pass inputs.check (below 500, JSON, a Status naming the problem on refusal, no
redirect, no traceback) within the timeout; the server's log must hold no traceback and no
plugin read failure. `--jobs N` splits the index range over N processes, each with its own app.

    python -m tests.fuzz.inproc --count 100000 --seed 1 [--start 0] [--jobs 2]
    python -m tests.fuzz.inproc --replay 1234 --seed 1
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import contextvars
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from gatekeeper import pki
from gatekeeper.authn.x509 import PeerCertificates
from gatekeeper.server.protocol import PEER_EXTENSION
from tests.fuzz.inputs import Answer, Input, Report, check, make, seeds, server_args

TIMEOUT = 30.0
CHUNK = 65536
PROGRESS_EVERY = 5000


CURRENT: contextvars.ContextVar[int] = contextvars.ContextVar("fuzz_input", default=-1)


class LogWatch(logging.Handler):
    """Collects, from every logger, each record with a traceback and each plugin read failure,
    with the number of the input being handled (threads the app starts inherit it)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()  # formatting a record is part of the real path too
        if record.exc_info:
            kind, value, tb = record.exc_info
            frame = traceback.extract_tb(tb)[-1] if tb else None
            where = f"{frame.filename}:{frame.lineno}" if frame else "?"
            name = kind.__name__ if kind else "?"
            at = f"input {CURRENT.get()}"
            self.problems.append(f"{at}: {record.name}: {message} ({where}: {name}: {value})")
        elif "could not read the object" in message:
            self.problems.append(f"input {CURRENT.get()}: {record.name}: {message}")


def build_app(workdir: Path) -> tuple[Any, dict[str, PeerCertificates]]:
    """The app exactly as `gatekeeper serve` builds it from these flags; and a peer per identity."""
    from gatekeeper.cli import build_parser
    from gatekeeper.commands.serve import settings_from, with_dev_certificates
    from gatekeeper.server.app import create_app

    cert_dir = workdir / "certs"
    argv = ["serve", "--cert-dir", str(cert_dir), "--reload-interval", "0.5", *server_args(workdir)]
    settings = with_dev_certificates(settings_from(build_parser().parse_args(argv)))
    app = create_app(settings)
    ca = pki.load(pki.pair(cert_dir, pki.CA_NAME))
    alice = pki.write(pki.issue_client(ca, "alice", ["dev"]), workdir / "clients", "alice")
    kube = pki.pair(cert_dir, pki.client_stem(pki.DEV_CLIENT))
    peers = {
        "kube-apiserver": PeerCertificates([kube.cert.read_text()]),
        "alice": PeerCertificates([alice.cert.read_text()]),
        "none": PeerCertificates(()),
    }
    return app, peers


def scope_of(request: Input, peer: PeerCertificates) -> dict[str, Any]:
    """The ASGI scope uvicorn would build for this request on a TLS connection."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers]
    if not any(k == b"host" for k, _ in headers):
        headers.insert(0, (b"host", b"127.0.0.1:8443"))
    if request.chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    elif request.body or request.method in ("POST", "PUT", "PATCH"):
        headers.append((b"content-length", str(len(request.body)).encode()))
    raw = request.target.encode("latin-1")
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": request.method, "scheme": "https", "path": unquote(request.target), "raw_path": raw,
        "query_string": request.query.encode("latin-1"), "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8443),
        "extensions": {PEER_EXTENSION: peer}, "state": {},
    }


async def call(app: Any, request: Input, peer: PeerCertificates) -> Answer:
    chunks = [request.body[i : i + CHUNK] for i in range(0, len(request.body), CHUNK)] or [b""]
    if not request.chunked:
        chunks = [request.body]
    messages = iter([*({"type": "http.request", "body": c, "more_body": True} for c in chunks[:-1]),
                     {"type": "http.request", "body": chunks[-1], "more_body": False}])
    status, content_type, body = 0, "", bytearray()

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, content_type
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = dict(message.get("headers") or [])
            content_type = headers.get(b"content-type", b"").decode("latin-1")
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope_of(request, peer), receive, send)
    return Answer(status, content_type, bytes(body))


async def _one(app: Any, peers: dict[str, PeerCertificates], request: Input, report: Report) -> None:
    CURRENT.set(request.index)  # each gathered input runs in its own task, so its own context
    try:
        answer = await asyncio.wait_for(call(app, request, peers[request.cert]), TIMEOUT)
    except TimeoutError:
        report.add(request, 0, f"no answer within {TIMEOUT:.0f} s (hang)")
        return
    except Exception as exc:  # the app raised out of ASGI: uvicorn would answer 500
        report.add(request, 500, f"exception out of the app: {type(exc).__name__}: {exc}")
        return
    if answer.status == 0:
        report.add(request, 0, "the app never started a response")
        return
    report.add(request, answer.status, check(answer, request.method))


class Watchdog:
    """The loop blocked on one input past the timeout: print what it is doing, and stop the run."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.current: tuple[int, float] | None = None
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        main = threading.main_thread().ident
        while True:
            time.sleep(1.0)
            current = self.current
            if current and time.monotonic() - current[1] > 2 * TIMEOUT:
                stack = "".join(traceback.format_stack(sys._current_frames()[main or 0]))
                print(f"HANG: seed {self.seed} input {current[0]} blocked the loop for "
                      f"{2 * TIMEOUT:.0f} s:\n{stack}", file=sys.stderr, flush=True)
                os._exit(3)


async def fuzz_range(workdir: Path, seed: int, start: int, count: int, concurrency: int,
                     quiet: bool = False) -> Report:
    server_log = _log_like_serve(workdir / "server.log")
    watch = LogWatch()
    logging.getLogger().addHandler(watch)
    app, peers = build_app(workdir)
    corpus = seeds()
    report = Report(start=start)
    dog = Watchdog(seed)
    started = time.monotonic()
    async with app.lifespan():
        for first in range(start, start + count, concurrency):
            batch = [make(seed, i, corpus) for i in range(first, min(first + concurrency, start + count))]
            dog.current = (first, time.monotonic())
            await asyncio.gather(*(_one(app, peers, request, report) for request in batch))
            done = first + len(batch) - start
            if not quiet and done % PROGRESS_EVERY < concurrency:
                rate = done / (time.monotonic() - started)
                print(f"seed {seed}: {done} inputs from {start} ({rate:.0f}/s), next --start "
                      f"{first + len(batch)}, failures {len(report.failures)}", file=sys.stderr, flush=True)
    dog.current = None
    report.seconds = time.monotonic() - started
    report.tracebacks = watch.problems
    logging.getLogger().removeHandler(watch)
    server_log.close()
    return report


def _log_like_serve(path: Path) -> Any:
    """serve's logging configuration, its stream a file instead of stderr."""
    import logging.config

    from gatekeeper.server.logs import log_config

    logging.config.dictConfig(log_config("text", "info"))
    stream = path.open("w", encoding="utf-8")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)
    return stream


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary directory that is also the working directory, as serve's is for its relative
    paths (the store and the audit log open theirs when first used)."""
    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="gatekeeper-fuzz-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(previous)


def _job(seed: int, start: int, count: int, concurrency: int) -> Report:
    """One process's share: its own work directory, app and store."""
    with workdir() as tmp:
        return asyncio.run(fuzz_range(tmp, seed, start, count, concurrency))


def shares(start: int, count: int, jobs: int) -> Iterator[tuple[int, int]]:
    size = -(-count // jobs)
    for first in range(start, start + count, size):
        yield first, min(size, start + count - first)


def run(seed: int, start: int, count: int, jobs: int, concurrency: int) -> Report:
    started = time.monotonic()
    total = Report(start=start)
    if jobs == 1:
        total.merge(_job(seed, start, count, concurrency))
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = [pool.submit(_job, seed, first, n, concurrency)
                       for first, n in shares(start, count, jobs)]
            for future in futures:
                total.merge(future.result())
    total.seconds = time.monotonic() - started
    return total


def replay(seed: int, index: int) -> int:
    request = make(seed, index, seeds())
    print(f"input {index}: {request.describe()}, chunked={request.chunked}, headers={request.headers}")
    print(request.body[:2000].decode("latin-1"))
    logging.basicConfig(level=logging.INFO)

    async def go(directory: Path) -> Answer:
        app, peers = build_app(directory)
        async with app.lifespan():
            return await call(app, request, peers[request.cert])

    with workdir() as tmp:
        answer = asyncio.run(go(tmp))
    print(answer.status, answer.content_type, answer.body[:2000].decode("utf-8", "replace"))
    print("problem:", check(answer, request.method))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--start", type=int, default=0, help="first input number (resume a run)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="processes, each with its own app")
    parser.add_argument("--concurrency", type=int, default=8, help="inputs in flight per process")
    parser.add_argument("--replay", type=int, help="send only input number N and show the answer")
    args = parser.parse_args(argv)
    if args.replay is not None:
        return replay(args.seed, args.replay)
    report = run(args.seed, args.start, args.count, args.jobs, args.concurrency)
    print(json.dumps(report.summary(), indent=1))
    return 0 if report.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
