"""The ceiling for the HTTP benchmarks: an empty POST endpoint on gatekeeper's own server stack.

    python -m tests.bench.empty_server --port 8444 --cert-dir certs --workers 2 --app raw|fastapi

Same uvicorn, same TLS settings and client CA, same TLS-aware protocol class (which hands the
client certificate to the app), same worker count as `gatekeeper serve`; the app reads the body
and answers `{}`. `raw` is a bare ASGI callable (what uvicorn + TLS can do at all); `fastapi` is
one FastAPI route (what the framework costs before any work is done).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import Response

from gatekeeper import pki
from gatekeeper.config import Settings
from gatekeeper.server.tls import uvicorn_tls_options

_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2")]


async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": b"{}"})


fastapi = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@fastapi.post("/{path:path}")
async def empty(request: Request) -> Response:
    await request.body()
    return Response(b"{}", media_type="application/json")


def settings_for(cert_dir: Path) -> Settings:
    server, ca = pki.pair(cert_dir, pki.SERVER_NAME), pki.pair(cert_dir, pki.CA_NAME)
    return Settings(tls_cert_file=server.cert, tls_private_key_file=server.key, client_ca_file=ca.cert)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--app", choices=("raw", "fastapi"), default="raw")
    args = parser.parse_args(argv)
    uvicorn.run(
        f"tests.bench.empty_server:{args.app}",
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # as gatekeeper serve
        **uvicorn_tls_options(settings_for(args.cert_dir)),
    )


if __name__ == "__main__":
    main()
