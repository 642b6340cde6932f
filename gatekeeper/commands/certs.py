"""`gatekeeper certs init`: the development PKI (CA, server certificate, client certificates).

The layout is the one `gatekeeper serve` uses under --cert-dir when no TLS flags are given:

    ca.crt ca.key              the dev CA (serve's client CA, and the caBundle of webhook-config)
    server.crt server.key      SANs localhost, 127.0.0.1, ::1 and each --host
    <client>.crt <client>.key  one per --client (default: kube-apiserver)
    .gitignore                 "*": nothing here is ever committed

Private keys are written with mode 0600. Existing files are kept (the CA in particular, so
certificates already handed out stay valid) unless --force; the server certificate is re-issued
when a --host is not among its SANs, for the hosts it named before plus the new ones (delete
server.crt to issue it for fewer). Each file is reported as created, kept or re-issued.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gatekeeper import paths, pki


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("certs", help="development certificates")
    certs = p.add_subparsers(dest="certs_command", required=True, metavar="SUBCOMMAND")
    init = certs.add_parser(
        "init",
        help="create a dev CA, a server certificate and client certificates",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    init.add_argument("--dir", type=Path, default=paths.default_cert_dir(), metavar="DIR",
                      help="where to write them: serve's --cert-dir, DATA_DIR/certs unless told")
    init.add_argument("--host", action="append", default=[], metavar="HOST",
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
        hosts = list(args.host)
        if args.force:  # new keys and CA, for every host the old server certificate named too
            server_cert = pki.pair(directory, pki.SERVER_NAME).cert
            if server_cert.exists():
                hosts = [*pki.certificate_hosts(server_cert), *hosts]
            for stem in (pki.CA_NAME, pki.SERVER_NAME):
                for path in (directory / f"{stem}.crt", directory / f"{stem}.key"):
                    path.unlink(missing_ok=True)
        made = pki.dev_pki(directory, hosts)
        issued = [_client(directory, name, groups, args.force) for name, groups in clients]
    except OSError as exc:
        print(f"gatekeeper certs init: --dir {directory}: {exc.filename or ''} {exc.strerror or exc}; "
              f"name a folder this user can write", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"gatekeeper certs init: {exc}", file=sys.stderr)
        return 1
    added = f"; added {', '.join(made.added)}" if made.added else ""
    print(f"CA:     {made.ca.cert} (key {made.ca.key}) {made.ca_status}")
    print(f"server: {made.server.cert} (key {made.server.key}) {made.server_status}, "
          f"hosts {', '.join(made.hosts)}{added}")
    for (name, groups), (pair, status) in zip(clients, issued, strict=True):
        group_text = f" groups {','.join(groups)}" if groups else ""
        print(f"client: {pair.cert} (key {pair.key}) {status}, user {name}{group_text}")
    print(f"private keys are mode 0600; {directory / '.gitignore'} keeps all of it out of git")
    return 0


def _client(directory: Path, name: str, groups: tuple[str, ...], force: bool) -> tuple[pki.KeyPair, str]:
    cert = pki.pair(directory, pki.client_stem(name)).cert
    before = cert.read_bytes() if cert.exists() else None
    issued = pki.ensure_dev_client(directory, name, groups, force=force, match_subject=True)
    if before is None:
        return issued, pki.CREATED
    return issued, pki.KEPT if issued.cert.read_bytes() == before else pki.REISSUED
