"""`gatekeeper quota reconcile`: recount quota usage from live objects and write it to the ledger."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gatekeeper.admission.quota.check import seeds
from gatekeeper.admission.quota.quotas import parse_quota
from gatekeeper.admission.quota.reconcile import LiveObject, Recount, live_object, recount
from gatekeeper.admission.quota.resources import QuotaError, to_strings
from gatekeeper.admission.quota_usage import quota_objects
from gatekeeper.admission.state import Store, StoreError
from gatekeeper.backends.factory import StoreURLError
from gatekeeper.commands.io import read_text
from gatekeeper.commands.store_flags import add_server_store_flags, open_store_from
from gatekeeper.config.files import input_or_stdin
from gatekeeper.k8s.yamltext import YAMLTextError, documents

KUBECTL = "kubectl get pods,services,secrets,configmaps,persistentvolumeclaims -A -o json"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("quota", help="inspect and repair ResourceQuota usage")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    reconcile = actions.add_parser(
        "reconcile", help=f"recount quota usage from live objects: the output of `{KUBECTL}`"
    )
    add_server_store_flags(reconcile)
    reconcile.add_argument("--dry-run", action="store_true", help="print the recount, write nothing")
    reconcile.add_argument("--allow-empty", action="store_true",
                           help="accept an input without objects (it sets every quota's usage to zero)")
    reconcile.add_argument("input", nargs="?", default="-", type=input_or_stdin, metavar="FILE",
                           help="a JSON or YAML List; - for stdin")
    reconcile.set_defaults(run=run_reconcile)


def run_reconcile(args: argparse.Namespace) -> int:
    try:
        name, text = read_text(args.input, f"the live objects (`{KUBECTL}`)")
        objects = live_objects(text, name)
        if not objects and not (args.allow_empty or args.dry_run):
            return _fail(f"{name} holds no objects: reconciling it would set every quota's usage to zero; "
                         f"pipe in `{KUBECTL}`, or pass --allow-empty if the cluster really is empty")
        store = open_store_from(args, create=False)
        try:
            recounts = _recount(store, objects)
            if not args.dry_run:
                store.quota_ledger.reconcile(
                    {(r.quota.namespace, r.quota.name): to_strings(r.after) for r in recounts}
                )
        finally:
            store.close()
    except OSError as exc:
        return _fail(f"{args.input}: {exc.strerror or exc}")
    except (QuotaError, StoreURLError, StoreError) as exc:
        return _fail(str(exc))
    _print_table(recounts)
    verb = "would update" if args.dry_run else "updated"
    print(f"{verb} {len(recounts)} quotas from {len(objects)} live objects", file=sys.stderr)
    return 0


def live_objects(text: str, source: str) -> list[LiveObject]:
    """Every item of a kubectl List (or of a stream of YAML/JSON documents)."""
    try:
        loaded = [doc for _line, doc in documents(text)]
    except YAMLTextError as exc:
        raise QuotaError(f"{source}: {exc}") from None
    result: list[LiveObject] = []
    for index, doc in enumerate(loaded):
        if doc is None:
            continue  # an empty document (a trailing ---)
        where = f"{source}: document {index}"
        if isinstance(doc, dict) and doc.get("kind", "").endswith("List") and "items" in doc:
            items = doc["items"]
            if not isinstance(items, list):
                raise QuotaError(f"{where}: items: expected a list of objects")
            result.extend(_item(item, f"{where}, items[{i}]") for i, item in enumerate(items))
        else:
            result.append(_item(doc, where))
    return result


def _item(obj: object, where: str) -> LiveObject:
    if not isinstance(obj, dict):
        raise QuotaError(f"{where}: expected an object, got {type(obj).__name__}")
    return live_object(obj, where)


def _recount(store: Store, objects: list[LiveObject]) -> list[Recount]:
    quotas = [parse_quota(obj) for obj in quota_objects(store)]
    namespaces = sorted({quota.namespace for quota in quotas})
    usage = {
        ns: store.quota_ledger.usage(ns, seeds([q for q in quotas if q.namespace == ns])) for ns in namespaces
    }
    return recount(quotas, usage, objects)


def _print_table(recounts: list[Recount]) -> None:
    rows = [("NAMESPACE", "QUOTA", "RESOURCE", "HARD", "USED BEFORE", "USED AFTER")]
    for r in recounts:
        for resource in sorted(r.quota.hard):
            before, after = r.before.get(resource), r.after.get(resource)
            rows.append(
                (
                    r.quota.namespace,
                    r.quota.name,
                    resource,
                    str(r.quota.hard[resource]),
                    "-" if before is None else str(before),
                    "-" if after is None else str(after),
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _fail(message: str) -> int:
    print(f"gatekeeper quota: {message}", file=sys.stderr)
    return 1
