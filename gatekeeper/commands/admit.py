"""`gatekeeper admit`: AdmissionReviews in, responses out (mutate, then validate), offline.

Two forms: reviews (one JSON document or JSON lines) -> one AdmissionReview response per line;
or, for people, `--object pod.yaml --namespace NS --user NAME` -> the decision and the mutated
object in YAML.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from gatekeeper.admission.chain import Chain, build_chain
from gatekeeper.admission.outcome import Outcome
from gatekeeper.admission.registry import PluginOptions, UnknownPlugin
from gatekeeper.admission.state import Store, StoreError
from gatekeeper.api.admission import bad_review_response, parse_admission_review, review_response, review_uid
from gatekeeper.backends.factory import StoreURLError
from gatekeeper.backends.manifests import ManifestError, ManifestSync
from gatekeeper.commands.io import answer_each
from gatekeeper.commands.state import write_list_file
from gatekeeper.commands.store_flags import add_store_flags, open_store_from
from gatekeeper.config import Settings
from gatekeeper.config.files import input_file, input_or_stdin
from gatekeeper.config.flags import add_flag, add_flags
from gatekeeper.k8s.fields import InvalidObject
from gatekeeper.k8s.yamltext import YAMLTextError, documents

# kinds the human form knows how to name as resources; others get a lower-case plural guess
_RESOURCES = {
    "Pod": "pods", "Namespace": "namespaces", "ConfigMap": "configmaps", "Secret": "secrets",
    "Service": "services", "ServiceAccount": "serviceaccounts", "LimitRange": "limitranges",
    "ResourceQuota": "resourcequotas", "PersistentVolumeClaim": "persistentvolumeclaims",
    "Deployment": "deployments", "ReplicaSet": "replicasets", "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets", "Job": "jobs", "CronJob": "cronjobs", "Ingress": "ingresses",
}
_CLUSTER_SCOPED = frozenset({"Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding",
                             "StorageClass", "PriorityClass", "CustomResourceDefinition"})


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "admit", help="run AdmissionReviews through the admission chain offline (mutate, then validate)"
    )
    add_flag(p, Settings, "state", help="manifest file or folder of Namespaces, LimitRanges, ResourceQuotas, "
             "ServiceAccounts, Secrets (repeatable)")
    add_store_flags(p, default="memory://", derived="", help="where the state lives while reviews run: "
                    "memory:// (default), sqlite:///PATH or etcd://HOST:PORT[,...]. Admitted objects are "
                    "recorded and quota is charged there, and --state replaces its manifests: name a "
                    "server's store only to change that server's state")
    add_flags(p, Settings, ("enable_admission_plugins", "service_account_token_volume"))
    p.add_argument("--state-out", type=Path, metavar="FILE",
                   help="write the store's objects after the last review")
    p.add_argument("--object", type=input_file, metavar="FILE",
                   help="build the review from this object (YAML or JSON)")
    p.add_argument("--namespace", metavar="NAMESPACE",
                   help="with --object: the request namespace (default: the object's)")
    p.add_argument("--user", default="admin", metavar="USER", help="with --object: the requesting user")
    p.add_argument("--group", action="append", default=[], metavar="GROUP",
                   help="with --object: a group (repeatable)")
    p.add_argument("--operation", choices=("CREATE", "UPDATE", "DELETE"), default="CREATE",
                   help="with --object: the request's operation")
    p.add_argument("--dry-run", action="store_true", help="with --object: a dry-run request")
    p.add_argument("input", nargs="?", default="-", type=input_or_stdin, metavar="FILE",
                   help="AdmissionReviews: JSON or JSON lines; - for stdin")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        options = PluginOptions(service_account_token_volume=args.service_account_token_volume)
        chain = build_chain(args.enable_admission_plugins, options)
    except UnknownPlugin as exc:
        return _fail(str(exc), 2)
    try:
        store = open_store_from(args)
    except (StoreURLError, StoreError) as exc:
        return _fail(str(exc), 2)
    try:
        if args.state:
            ManifestSync(store, args.state).load()
        code = _run_object(args, chain, store) if args.object else _run_reviews(args.input, chain, store)
        if args.state_out:
            write_list_file(args.state_out, store)
        return code
    except (ManifestError, StoreError) as exc:
        return _fail(str(exc), 1)
    except OSError as exc:
        return _fail(f"{exc.filename or args.input}: {exc.strerror or exc}", 1)
    finally:
        store.close()


def _run_reviews(source: str, chain: Chain, store: Store) -> int:
    def answer(doc: Any) -> dict[str, Any]:
        version, request = parse_admission_review(doc)
        return review_response(version, request.uid, chain.simulate(request, store))

    def refuse(doc: Any, exc: InvalidObject) -> dict[str, Any]:
        message = f"not a valid AdmissionReview: {exc}"
        return bad_review_response(_version_of(doc), review_uid(doc), message)

    return answer_each("admit", source, answer, refuse)


def _version_of(doc: Any) -> str:
    api_version = doc.get("apiVersion") if isinstance(doc, dict) else None
    return "v1beta1" if api_version == "admission.k8s.io/v1beta1" else "v1"


def _run_object(args: argparse.Namespace, chain: Chain, store: Store) -> int:
    review = build_review(args)
    try:
        _version, request = parse_admission_review(review)
    except InvalidObject as exc:
        return _fail(f"{args.object}: {exc}", 1)
    outcome = chain.simulate(request, store)
    print_decision(outcome)
    return 0 if outcome.allowed else 1


def build_review(args: argparse.Namespace) -> dict[str, Any]:
    """The AdmissionReview kube-apiserver would send for --operation on --object."""
    obj = _read_object(args.object)
    kind = str(obj.get("kind", ""))
    group, _, version = str(obj.get("apiVersion", "v1")).rpartition("/")
    metadata = obj.get("metadata") or {}
    namespace = "" if kind in _CLUSTER_SCOPED else (args.namespace or metadata.get("namespace") or "default")
    if namespace:
        obj.setdefault("metadata", {})["namespace"] = namespace
    resource = _RESOURCES.get(kind) or _plural(kind.lower())
    deleting = args.operation == "DELETE"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": str(metadata.get("name", "")),
            "namespace": namespace,
            "operation": args.operation,
            "userInfo": {"username": args.user, "groups": [*args.group, "system:authenticated"]},
            "object": None if deleting else obj,
            "oldObject": obj if deleting or args.operation == "UPDATE" else None,
            "dryRun": args.dry_run,
        },
    }


def _read_object(path: Path) -> dict[str, Any]:
    try:
        loaded = [doc for _line, doc in documents(path.read_text(encoding="utf-8"))]
    except YAMLTextError as exc:
        raise ManifestError(f"{path}: {exc}", exc.line) from None
    value = loaded[0] if len(loaded) == 1 else None
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise ManifestError(f"{path}: expected one object with a kind")
    return value


def _plural(word: str) -> str:
    if word.endswith("y"):
        return word[:-1] + "ies"
    return word + ("es" if word.endswith("s") else "s")


def print_decision(outcome: Outcome) -> None:
    if outcome.denied is None:
        print("allowed")
    else:
        denied = outcome.denied
        print(f"denied ({denied.code} {denied.reason}): {denied.message}")
    for warning in outcome.warnings:
        print(f"warning: {warning}")
    if outcome.allowed and outcome.object is not None:
        print("---")
        yaml.safe_dump(outcome.object, sys.stdout, sort_keys=False, width=1_000_000)


def _fail(message: str, code: int) -> int:
    print(f"gatekeeper admit: {message}", file=sys.stderr)
    return code
