"""Run the benchmark's apps under Granian or Hypercorn, built as `gatekeeper serve` builds them.

    python -m tests.bench.other_servers granian|hypercorn bare --port 8444 --cert-dir certs --workers 2
    python -m tests.bench.other_servers granian|hypercorn gatekeeper --port 8444 --cert-dir certs \\
        --workers 2 -- [gatekeeper serve flags...]

`bare` is tests/bench/empty_server.py's ASGI callable. `gatekeeper` parses the serve flags with
serve's own parser and settings code and hands them to the workers in BENCH_GATEKEEPER_SETTINGS
(these servers take an import string, not serve's pickled Config), with a fresh prometheus
multiprocess folder in PROMETHEUS_MULTIPROC_DIR as serve makes; each worker builds the app with
gatekeeper.server.app.create_app, serve's own factory (gatekeeper_app below).

Both servers get the same certificate, key and client CA as uvicorn, client certificates
optional per connection (Granian: --no-ssl-client-verify with --ssl-ca is rustls'
allow_unauthenticated; Hypercorn: CERT_OPTIONAL), TLS 1.2 as the minimum, HTTP/1.1 and uvloop.
Neither puts the client certificate in the ASGI scope (Granian 2.8: no TLS data in the scope at
all; Hypercorn 0.18: only ALPN is read from the SSL object), so gatekeeper's x509 authentication
cannot name a caller there; the benchmark authenticates the caller by bearer token instead.
The launcher execs the server's command line, so its pid is the server's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import orjson

from gatekeeper.cli import build_parser
from gatekeeper.commands.serve import settings_from, with_dev_certificates
from gatekeeper.config import Settings
from gatekeeper.server.app import create_app
from gatekeeper.server.routing import App
from tests.bench.empty_server import settings_for

TARGETS = {  # (Granian's target, Hypercorn's target)
    "bare": ("tests.bench.empty_server:raw", "tests.bench.empty_server:raw"),
    "gatekeeper": ("tests.bench.other_servers:gatekeeper_app", "tests.bench.other_servers:gatekeeper_app()"),
}
SETTINGS_ENV = "BENCH_GATEKEEPER_SETTINGS"


def gatekeeper_app() -> App:
    """The worker's factory: serve's app from the settings the launcher put in SETTINGS_ENV."""
    return create_app(Settings.model_validate(orjson.loads(os.environ[SETTINGS_ENV])))


def gatekeeper_settings(serve_flags: Sequence[str]) -> Settings:
    """The settings `gatekeeper serve FLAGS` would run with (dev certificates filled in)."""
    args = build_parser().parse_args(["serve", *serve_flags])
    return with_dev_certificates(settings_from(args))


def granian_command(app: str, port: int, workers: int, tls: Settings) -> list[str]:
    command = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--loop", "uvloop", "--http", "1", "--no-ws", "--log-level", "warning",
        "--ssl-certificate", str(tls.tls_cert_file), "--ssl-keyfile", str(tls.tls_private_key_file),
        "--ssl-protocol-min", "tls1.2",
    ]
    if tls.client_ca_file:
        command += ["--ssl-ca", str(tls.client_ca_file), "--no-ssl-client-verify"]
    if app == "gatekeeper":
        command.append("--factory")
    return [*command, TARGETS[app][0]]


class HypercornConfig:
    """What Hypercorn's flags cannot set (`--config python:...`): uvicorn and Granian keep a
    connection open for any number of requests; Hypercorn closes it after 1,000 by default."""

    keep_alive_max_requests = 1 << 62
    keep_alive_timeout = Settings().idle_timeout


def hypercorn_command(app: str, port: int, workers: int, tls: Settings) -> list[str]:
    command = [
        sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--worker-class", "uvloop", "--config", "python:tests.bench.other_servers.HypercornConfig",
        "--certfile", str(tls.tls_cert_file), "--keyfile", str(tls.tls_private_key_file),
    ]
    if tls.client_ca_file:
        command += ["--ca-certs", str(tls.client_ca_file), "--verify-mode", "CERT_OPTIONAL"]
    return [*command, TARGETS[app][1]]


COMMANDS = {"granian": granian_command, "hypercorn": hypercorn_command}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=sorted(COMMANDS))
    parser.add_argument("app", choices=sorted(TARGETS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.serve_flags = argv[split + 1 :]  # gatekeeper serve's flags, for the app gatekeeper
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    tls = settings_for(args.cert_dir)
    if args.app == "gatekeeper":
        flags = ["--cert-dir", str(args.cert_dir), "--workers", str(args.workers), *args.serve_flags]
        tls = gatekeeper_settings(flags)
        os.environ[SETTINGS_ENV] = orjson.dumps(tls.model_dump(mode="json")).decode()
        if args.workers > 1:  # serve's _metrics_dir; left for the caller's temporary folder to remove
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metrics-", dir=Path.cwd())
    command = COMMANDS[args.server](args.app, args.port, args.workers, tls)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
