"""`gatekeeper audit`: every existing object of a cluster or a dump checked against the admission
rules (gatekeeper/inspect/). Reads only; the reports go to stdout or to files, never to the cluster.

Exit status, as lint's: 0 no errors (warnings allowed), 1 errors found, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from gatekeeper.admission.state import StoreError
from gatekeeper.backends.kube.client import KubeClient, KubeConfigError
from gatekeeper.config import Settings
from gatekeeper.config.files import input_or_stdin
from gatekeeper.config.flags import add_flag
from gatekeeper.errors import InvalidInput
from gatekeeper.inspect.checks import Audit, Context, Violation
from gatekeeper.inspect.reports import (
    Outcome,
    as_json,
    as_sarif_text,
    as_text,
    as_yaml,
    file_name,
    policy_reports,
    summary,
)
from gatekeeper.inspect.sources import PAGE_SIZE, ClusterSource, DumpSource, Source, SourceError
from gatekeeper.lint.report import Severity

FORMATS = ("text", "json", "sarif", "policyreport")
KUBECTL = (
    "kubectl get namespaces,limitranges,resourcequotas,serviceaccounts,pods,services,secrets,"
    "configmaps,persistentvolumeclaims -A -o json"
)


class UsageError(InvalidInput):
    pass


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "audit",
        help="check existing objects (a live cluster or a dump) against the admission rules (exit 0/1/2)",
        description=f"Check every existing object against LimitRanger, ResourceQuota, NamespaceLifecycle "
        f"and ServiceAccount. A dump is the output of `{KUBECTL}` (JSON, JSON lines or YAML).",
    )
    p.add_argument("dump", nargs="?", type=input_or_stdin, metavar="FILE", help="a dump file; - for stdin")
    add_flag(p, Settings, "kubeconfig",
             help="audit the live cluster this kubeconfig names (lists only); in-cluster: the pod's account")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=PAGE_SIZE,
        metavar="N",
        help=f"with --kubeconfig: objects per list page (default {PAGE_SIZE}), as kubectl's --chunk-size",
    )
    p.add_argument("--format", choices=FORMATS, default="text", help="report format")
    p.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="with --format policyreport: write policyreport-<namespace>.yaml and clusterpolicyreport.yaml "
        "there instead of stdout",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        source = _source(args)
        try:
            outcome = audit(source)
        finally:
            source.close()
        _write(outcome, args.format, args.output_dir)
    except UsageError as exc:
        return _fail(str(exc))
    except (SourceError, KubeConfigError, StoreError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    for note in outcome.notes:
        print(f"gatekeeper audit: note: {note}", file=sys.stderr)
    print(f"gatekeeper audit: {summary(outcome)}", file=sys.stderr)
    return 1 if any(v.rule.severity is Severity.ERROR for v in outcome.violations) else 0


def _source(args: argparse.Namespace) -> Source:
    if args.output_dir is not None and args.format != "policyreport":
        raise UsageError("--output-dir writes PolicyReports: use it with --format policyreport")
    if args.kubeconfig and args.dump:
        raise UsageError("audit either a cluster (--kubeconfig) or a dump (DUMP), not both")
    if args.chunk_size < 1:
        raise UsageError("--chunk-size must be at least 1")
    if args.kubeconfig:
        return ClusterSource(KubeClient(args.kubeconfig), args.chunk_size)
    if args.dump:
        return DumpSource(args.dump)
    raise UsageError(f"name a dump (the output of `{KUBECTL}`, - for stdin) or --kubeconfig PATH")


def audit(source: Source) -> Outcome:
    """Pass one builds the context, pass two checks every object; then the quota findings."""
    context = Context()
    for where, obj in source.context_objects():
        context.add(obj, where)
    checks = Audit(context, source.covered(context.kinds))
    violations: list[Violation] = []
    for where, obj in source.all_objects():
        violations += checks.check(obj, where)
    found = sorted(checks.finish() + violations, key=_order)
    return Outcome(found, checks.objects, checks.notes)


def _order(v: Violation) -> tuple[str, str, str, str]:
    return v.obj.namespace, v.obj.kind, v.obj.name, v.rule.id


def _write(outcome: Outcome, fmt: str, output_dir: Path | None) -> None:
    if fmt != "policyreport":
        render = {"text": as_text, "json": as_json, "sarif": as_sarif_text}[fmt]
        sys.stdout.write(render(outcome))
        return
    reports = policy_reports(outcome, time.time())
    if output_dir is None:
        sys.stdout.write(as_yaml(reports))
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for report in reports:
        (output_dir / file_name(report)).write_text(as_yaml([report]), encoding="utf-8")


def _fail(message: str) -> int:
    print(f"gatekeeper audit: {message}", file=sys.stderr)
    return 2
