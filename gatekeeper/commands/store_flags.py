"""--store and the etcd flags: the same for `serve` and for every offline command that opens the
server's store (admit, state sync/show, quota reconcile), so a command can reach an etcd that
requires TLS client certificates under a non-default prefix, as the server does."""

from __future__ import annotations

import argparse
from pathlib import Path

from gatekeeper.config import DEFAULT_STORE
from gatekeeper.store.base import Store
from gatekeeper.store.etcd_options import EtcdOptions
from gatekeeper.store.factory import open_store

DEFAULT_ETCD_PREFIX = "/gatekeeper/"


def add_store_flags(parser: argparse.ArgumentParser, default: str, help: str) -> None:
    parser.add_argument("--store", default=default, help=help)
    parser.add_argument("--etcd-prefix", default=DEFAULT_ETCD_PREFIX,
                        help="prefix of every etcd key gatekeeper uses")
    parser.add_argument("--etcd-cafile", type=Path,
                        help="CA that signed the etcd members' certificates (HTTPS)")
    parser.add_argument("--etcd-certfile", type=Path, help="client certificate presented to etcd")
    parser.add_argument("--etcd-keyfile", type=Path, help="key of --etcd-certfile")


def add_server_store_flags(parser: argparse.ArgumentParser) -> None:
    """The store flags of a command that works on a server's store (state, quota reconcile)."""
    add_store_flags(parser, DEFAULT_STORE, "the server's --store: sqlite:///PATH, etcd://HOST:PORT[,...]")


def open_store_from(args: argparse.Namespace) -> Store:
    """StoreURLError or StoreError, for the command to report."""
    return open_store(args.store, EtcdOptions.from_flags(args))
