"""`gatekeeper state`: the admission store's view of the cluster — replace it, or show it."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml

from gatekeeper.commands.io import read_text
from gatekeeper.commands.store_flags import add_server_store_flags, open_store_from
from gatekeeper.quota.resources import QuotaError
from gatekeeper.quota.status import namespace_quotas, with_usage
from gatekeeper.store.base import JSONObject, Store, StoreError, key_of
from gatekeeper.store.factory import StoreURLError
from gatekeeper.store.manifests import ManifestError, parse_objects


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("state", help="replace or show the admission store's objects")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sync = actions.add_parser(
        "sync",
        help="replace the store's view with live objects: the output of `kubectl get namespaces,"
        "limitranges,resourcequotas,serviceaccounts,secrets -A -o json`",
    )
    add_server_store_flags(sync)
    sync.add_argument("input", nargs="?", default="-", help="a JSON or YAML List; - for stdin")
    sync.set_defaults(run=run_sync)
    show = actions.add_parser("show", help="print the store's objects as a kind: List")
    add_server_store_flags(show)
    show.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    show.set_defaults(run=run_show)


def run_sync(args: argparse.Namespace) -> int:
    try:
        name, text = read_text(args.input)
        objects = parse_objects(text, name)
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
    print(f"synced {len(objects)} objects into {args.store} ({summary})", file=sys.stderr)
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
        store = open_store_from(args)
        try:
            write_list(sys.stdout, store, args.output)
        finally:
            store.close()
    except (StoreURLError, StoreError) as exc:
        return _fail(str(exc))
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
