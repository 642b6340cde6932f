"""`gatekeeper state`: the admission store's view of the cluster — replace it, or show it."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml

from gatekeeper.admission.quota.resources import QuotaError
from gatekeeper.admission.quota_usage import namespace_quotas, with_usage
from gatekeeper.admission.state import JSONObject, Store, StoreError, key_of
from gatekeeper.backends.factory import StoreURLError
from gatekeeper.backends.manifests import ManifestError, parse_objects
from gatekeeper.commands.io import read_text
from gatekeeper.commands.store_flags import add_server_store_flags, open_store_from, store_url
from gatekeeper.config.files import input_or_stdin


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("state", help="replace or show the admission store's objects")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sync = actions.add_parser(
        "sync",
        help="replace the store's view with live objects: the output of `kubectl get namespaces,"
        "limitranges,resourcequotas,serviceaccounts,secrets -A -o json`",
    )
    add_server_store_flags(sync)
    sync.add_argument("--allow-empty", action="store_true",
                      help="accept an input without objects (it empties the store)")
    sync.add_argument("input", nargs="?", default="-", type=input_or_stdin, metavar="FILE",
                      help="a JSON or YAML List; - for stdin")
    sync.set_defaults(run=run_sync)
    show = actions.add_parser("show", help="print the store's objects as a kind: List")
    add_server_store_flags(show)
    show.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="output format")
    show.set_defaults(run=run_show)
    reset = actions.add_parser(
        "reset", help="delete every object and all quota usage from the store (a fresh start)"
    )
    add_server_store_flags(reset)
    reset.add_argument("--yes", action="store_true", help="really delete; without it, say what would go")
    reset.set_defaults(run=run_reset)


def run_sync(args: argparse.Namespace) -> int:
    try:
        name, text = read_text(args.input, "the objects to sync (kubectl get ... -o json)")
        objects = parse_objects(text, name)
        if not objects and not args.allow_empty:
            return _fail(f"{name} holds no objects: syncing it would empty the store; pass the output of "
                         f"`kubectl get ... -o json`, or --allow-empty to empty it")
        store = open_store_from(args)
        try:
            store.replace_all(objects)
            restart_quota_usage(store)
        finally:
            store.close()
    except OSError as exc:
        return _fail(f"{args.input}: {exc.strerror or exc}")
    except (ManifestError, StoreURLError, StoreError, QuotaError) as exc:
        return _fail(str(exc))
    counts = Counter(obj["kind"] for obj in objects)
    summary = ", ".join(f"{kind}: {n}" for kind, n in sorted(counts.items())) or "nothing"
    print(f"synced {len(objects)} objects into {store_url(args)} ({summary})", file=sys.stderr)
    return 0


def restart_quota_usage(store: Store) -> None:
    """Synced quotas carry the cluster's status.used: the ledger starts again from it."""
    usage = {}
    for namespace in sorted({_namespace(q) for q in store.all() if q.get("kind") == "ResourceQuota"}):
        for quota in namespace_quotas(store, namespace):
            usage[(namespace, quota.name)] = quota.seed
    store.quota_ledger.reconcile(usage)


def _namespace(obj: JSONObject) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def run_show(args: argparse.Namespace) -> int:
    try:
        store = open_store_from(args, create=False)
        try:
            write_list(sys.stdout, store, args.output)
        finally:
            store.close()
    except (StoreURLError, StoreError) as exc:
        return _fail(str(exc))
    return 0


def run_reset(args: argparse.Namespace) -> int:
    try:
        store = open_store_from(args, create=False)
        try:
            objects = store.all()
            if args.yes:
                quotas = [key_of(obj) for obj in objects if obj.get("kind") == "ResourceQuota"]
                store.replace_all([])
                store.quota_ledger.reconcile({(ns, name): {} for _kind, ns, name in quotas})
        finally:
            store.close()
    except (StoreURLError, StoreError) as exc:
        return _fail(str(exc))
    if not args.yes:
        return _fail(f"would delete {len(objects)} objects and all quota usage from {store_url(args)}; "
                     f"add --yes to do it")
    print(f"reset {store_url(args)}: deleted {len(objects)} objects and all quota usage", file=sys.stderr)
    return 0


def object_list(store: Store) -> JSONObject:
    """Every stored object; ResourceQuotas carry the quota ledger's usage in status.used."""
    quotas = {key_of(quota): quota for quota in with_usage(store)}
    items = [quotas.get(key_of(obj), obj) for obj in store.all()]
    return {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}


def write_list(out: TextIO, store: Store, output: str) -> None:
    document = object_list(store)
    if output == "json":
        out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        yaml.safe_dump(document, out, sort_keys=False)


def write_list_file(path: Path, store: Store) -> None:
    """--state-out: JSON for a .json file, YAML otherwise."""
    with path.open("w", encoding="utf-8") as out:
        write_list(out, store, "json" if path.suffix == ".json" else "yaml")


def _fail(message: str) -> int:
    print(f"gatekeeper state: {message}", file=sys.stderr)
    return 1
