"""--store and the etcd flags: the same for `serve` and for every offline command that opens the
server's store (admit, state sync/show/reset, quota reconcile), so a command can reach an etcd that
requires TLS client certificates under a non-default prefix, as the server does.

Without --store, serve and the server-store commands use the SQLite file in --data-dir
(gatekeeper/paths.py), so they agree wherever each is run from."""

from __future__ import annotations

import argparse
from pathlib import Path

from gatekeeper import paths
from gatekeeper.admission.state import Store
from gatekeeper.backends.etcd.options import EtcdOptions
from gatekeeper.backends.factory import StoreURLError, open_store
from gatekeeper.commands.files import input_file

DEFAULT_ETCD_PREFIX = "/gatekeeper/"


def add_store_flags(parser: argparse.ArgumentParser, default: str | None, help: str) -> None:
    """`default` None: the store in --data-dir (the command then has a --data-dir flag of its own)."""
    shown = help if default is not None else f"{help} (default: sqlite:///DATA_DIR/{paths.STORE_FILE})"
    parser.add_argument("--store", default=default, metavar="URL", help=shown)
    parser.add_argument("--etcd-prefix", default=DEFAULT_ETCD_PREFIX, metavar="PREFIX",
                        help="prefix of every etcd key gatekeeper uses")
    parser.add_argument("--etcd-cafile", type=input_file, metavar="FILE",
                        help="CA that signed the etcd members' certificates (HTTPS)")
    parser.add_argument("--etcd-certfile", type=input_file, metavar="FILE",
                        help="client certificate presented to etcd")
    parser.add_argument("--etcd-keyfile", type=input_file, metavar="FILE", help="key of --etcd-certfile")


def add_data_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=paths.default_data_dir(), metavar="DIR",
                        help=f"gatekeeper's data directory: the dev certificates (certs/) and the "
                             f"default store ({paths.STORE_FILE}); ${paths.DATA_DIR_ENV} sets the default")


def add_server_store_flags(parser: argparse.ArgumentParser) -> None:
    """The store flags of a command that works on a server's store (state, quota reconcile)."""
    add_data_dir_flag(parser)
    add_store_flags(parser, None, "the server's --store: sqlite:///PATH, etcd://HOST:PORT[,...]")


def store_url(args: argparse.Namespace) -> str:
    """--store, or the SQLite store in --data-dir."""
    return str(args.store) if args.store is not None else paths.store_url(args.data_dir)


def open_store_from(args: argparse.Namespace, create: bool = True) -> Store:
    """StoreURLError or StoreError, for the command to report.

    `create` False (commands that only read or repair a server's store): the default store must
    already exist, so that running one in the wrong place or with the wrong --data-dir says so
    instead of creating an empty database there."""
    if args.store is None and not create:
        path = args.data_dir.absolute() / paths.STORE_FILE
        if not path.exists():
            raise StoreURLError(
                f"no store at {path} (the default --store, in --data-dir {args.data_dir}): run "
                f"`gatekeeper serve` or `gatekeeper state sync` first, or name the server's store with "
                f"--store sqlite:///PATH or --store etcd://HOST:PORT"
            )
    return open_store(store_url(args), EtcdOptions.from_flags(args))
