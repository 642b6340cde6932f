"""--store and the etcd flags: the same for `serve` and for every offline command that opens the
server's store (admit, state sync/show/reset, quota reconcile), so a command can reach an etcd that
requires TLS client certificates under a non-default prefix, as the server does. Each is declared
once, in the settings model (gatekeeper/config/settings.py).

Without --store, serve and the server-store commands use the SQLite file in --data-dir
(gatekeeper/paths.py), so they agree wherever each is run from."""

from __future__ import annotations

import argparse
from typing import Any

from gatekeeper import paths
from gatekeeper.admission.state import Store
from gatekeeper.backends.etcd.options import EtcdOptions
from gatekeeper.backends.factory import StoreURLError, open_store
from gatekeeper.config import Settings
from gatekeeper.config.flags import add_flag, add_flags

ETCD_FLAGS = ("etcd_prefix", "etcd_cafile", "etcd_certfile", "etcd_keyfile")


def add_store_flags(parser: argparse.ArgumentParser, **store: Any) -> None:
    """--store (with this command's own help, or default) and the etcd flags."""
    add_flag(parser, Settings, "store", **store)
    add_flags(parser, Settings, ETCD_FLAGS)


def add_server_store_flags(parser: argparse.ArgumentParser) -> None:
    """The store flags of a command that works on a server's store (state, quota reconcile)."""
    add_flag(parser, Settings, "data_dir")
    add_store_flags(parser, help="the server's --store: sqlite:///PATH, etcd://HOST:PORT[,...]")


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
