"""`gatekeeper certs init`: the development PKI (CA, server certificate, client certificates).

The layout is the one `gatekeeper serve` uses under --cert-dir when no TLS flags are given:

    ca.crt ca.key              the dev CA (serve's client CA, and the caBundle of webhook-config)
    server.crt server.key      SANs localhost, 127.0.0.1, ::1 and each --host
    <client>.crt <client>.key  one per --client (default: kube-apiserver)
    .gitignore                 "*": nothing here is ever committed

Private keys are written with mode 0600. Existing files are kept (the CA in particular, so
certificates already handed out stay valid) unless --force; the server certificate is re-issued
when a --host is not among its SANs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gatekeeper import pki


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("certs", help="development certificates")
    certs = p.add_subparsers(dest="certs_command", required=True, metavar="SUBCOMMAND")
    init = certs.add_parser(
        "init",
        help="create a dev CA, a server certificate and client certificates",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    init.add_argument("--dir", type=Path, default=Path("certs"), help="where to write them (default: certs)")
    init.add_argument("--host", action="append", default=[],
                      help="an extra DNS name or IP address for the server certificate (repeatable)")
    init.add_argument("--client", action="append", default=[], metavar="NAME[:GROUP,...]",
                      help="a client certificate: CN=NAME, O=each GROUP (repeatable; default kube-apiserver)")
    init.add_argument("--force", action="store_true",
                      help="replace existing files (a new CA invalidates every certificate it signed)")
    init.set_defaults(run=run_init)


def parse_client(spec: str) -> tuple[str, tuple[str, ...]]:
    name, _, groups = spec.partition(":")
    if not name:
        raise ValueError(f"--client {spec!r}: expected NAME[:GROUP,...]")
    return name, tuple(g for g in groups.split(",") if g)


def run_init(args: argparse.Namespace) -> int:
    try:
        clients = [parse_client(spec) for spec in args.client] or [(pki.DEV_CLIENT, ())]
        directory: Path = args.dir
        if args.force:
            for stem in (pki.CA_NAME, pki.SERVER_NAME):
                for path in (directory / f"{stem}.crt", directory / f"{stem}.key"):
                    path.unlink(missing_ok=True)
        ca, server = pki.ensure_dev_pki(directory, args.host)
        issued = [
            pki.ensure_dev_client(directory, name, groups, force=args.force, match_subject=True)
            for name, groups in clients
        ]
    except (OSError, ValueError) as exc:
        print(f"gatekeeper certs init: {exc}", file=sys.stderr)
        return 1
    print(f"CA:     {ca.cert} (key {ca.key})")
    print(f"server: {server.cert} (key {server.key})")
    for (name, groups), pair in zip(clients, issued, strict=True):
        group_text = f" groups {','.join(groups)}" if groups else ""
        print(f"client: {pair.cert} (key {pair.key}) user {name}{group_text}")
    print(f"private keys are mode 0600; {directory / '.gitignore'} keeps all of it out of git")
    return 0
