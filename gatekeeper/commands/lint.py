"""`gatekeeper lint`: what policies, credential files and manifests really do; for CI.

Exit status: 0 no errors (warnings allowed), 1 errors found, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.policy import PolicyError, Rule, load_policy_file
from gatekeeper.config import Settings
from gatekeeper.config.files import input_file, input_path
from gatekeeper.config.flags import add_flag
from gatekeeper.errors import InvalidInput
from gatekeeper.lint import abac, credentials, manifests
from gatekeeper.lint.explain import diff, permissions, render_diff, render_permissions
from gatekeeper.lint.report import Finding, RuleInfo, as_json, as_sarif, as_text, exit_code
from gatekeeper.lint.subjects import KnownSubjects, certificate_files, from_certificate, from_csv

KINDS = ("abac", "token", "basic", "manifest")
ALL_RULES: tuple[RuleInfo, ...] = tuple(
    dict.fromkeys((*abac.RULES, *credentials.TOKEN_RULES, *credentials.BASIC_RULES, *manifests.RULES))
)


class UsageError(InvalidInput):
    pass


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "lint", help="lint ABAC policies, token/basic-auth files and state manifests (exit 0/1/2)"
    )
    p.add_argument("paths", nargs="*", type=input_path, metavar="PATH", help="files or folders")
    p.add_argument("--kind", choices=KINDS, help="treat every file as this kind instead of detecting it")
    p.add_argument("--format", choices=["text", "json", "sarif"], default="text", help="report format")
    add_flag(p, Settings, "token_auth_file", repeat=True,
             help="a credential source: policy users and groups it does not know are reported")
    add_flag(p, Settings, "basic_auth_file", repeat=True,
             help="a credential source, as --token-auth-file (repeatable)")
    p.add_argument(
        "--client-cert",
        type=input_path,
        action="append",
        default=[],
        metavar="PATH",
        help="a client certificate (or a folder of *.crt/*.pem): its CN and O are known subjects",
    )
    p.add_argument("--explain", metavar="USER", help="print the effective permissions of USER instead")
    p.add_argument(
        "--group", action="append", default=[], metavar="GROUP",
        help="with --explain: a group of USER (repeatable)",
    )
    p.add_argument(
        "--diff",
        nargs=2,
        type=input_file,
        metavar=("OLD", "NEW"),
        help="print which grants a policy change adds and removes, per subject, each proven by a request "
        "one policy allows and the other does not (exact: none missed, none invented)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.diff:
            return _diff(args.diff[0], args.diff[1], args.format)
        if args.explain is not None:
            return _explain(args.paths, args.explain, args.group, args.format)
        if not args.paths:
            raise UsageError("name at least one file or folder to lint")
        findings = _lint(args)
    except UsageError as exc:
        print(f"gatekeeper lint: {exc}", file=sys.stderr)
        return 2
    except PolicyError as exc:
        print(f"gatekeeper lint: {exc}", file=sys.stderr)
        return 1
    render = {"text": as_text, "json": as_json}.get(args.format)
    sys.stdout.write(render(findings) if render else as_sarif(findings, ALL_RULES))
    return exit_code(findings)


def _lint(args: argparse.Namespace) -> list[Finding]:
    files = _classify(args.paths, args.kind)
    known = _known_subjects(args)
    findings: list[Finding] = []
    for path in files["abac"]:
        findings.extend(abac.lint_policy(path, known=known))
    for path in [*files["token"], *args.token_auth_file]:
        findings.extend(credentials.lint_token_file(path))
    for path in [*files["basic"], *args.basic_auth_file]:
        findings.extend(credentials.lint_basic_auth_file(path))
    if files["manifest"]:
        findings.extend(manifests.lint_manifests(files["manifest"]))
    return findings


def _known_subjects(args: argparse.Namespace) -> KnownSubjects | None:
    if not (args.token_auth_file or args.basic_auth_file or args.client_cert):
        return None
    known = KnownSubjects()
    for path in args.token_auth_file:
        from_csv(known, path, "token file", "token")
    for path in args.basic_auth_file:
        from_csv(known, path, "basic auth file", "password")
    for path in certificate_files(args.client_cert):
        problem = from_certificate(known, path)
        if problem:
            raise UsageError(problem)
    return known


def _classify(paths: Sequence[Path], forced: str | None) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {kind: [] for kind in KINDS}
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                kind = forced or detect_kind(child)
                if kind:
                    files[kind].append(child)
        elif path.is_file():
            kind = forced or detect_kind(path)
            if kind is None:
                raise UsageError(
                    f"{path}: cannot tell what kind of file this is; pass --kind ({', '.join(KINDS)})"
                )
            files[kind].append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return files


def detect_kind(path: Path) -> str | None:
    """The kind of a file from its name, then (for CSV files) its content; None if unknown."""
    name = path.name.lower()
    if path.suffix in (".jsonl", ".abac"):
        return "abac"
    if path.suffix in (".yaml", ".yml", ".json"):
        return "manifest"
    if path.suffix != ".csv":
        return None
    if "token" in name:
        return "token"
    if "basic" in name or "password" in name:
        return "basic"
    try:
        first = path.read_text(encoding="utf-8", errors="replace").lstrip().split(",", 1)[0].strip('"')
    except OSError:
        return None
    return "basic" if first.startswith(("$scrypt$", "$argon2id$", "$pbkdf2-sha256$")) else None


def _load_rules(path: Path) -> list[Rule]:
    return list(load_policy_file(path).rules)


def _explain(paths: Sequence[Path], user: str, groups: Sequence[str], fmt: str) -> int:
    if not paths:
        raise UsageError("--explain needs the policy files to explain")
    rules = [rule for path in paths for rule in _load_rules(path)]
    rows = permissions(rules, user, groups)
    if fmt == "text":
        sys.stdout.write(render_permissions(rows))
    else:
        sys.stdout.write(orjson.dumps([asdict(r) for r in rows], option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _diff(old: Path, new: Path, fmt: str) -> int:
    changes = diff(_load_rules(old), _load_rules(new))
    if fmt == "text":
        sys.stdout.write(render_diff(changes))
    else:
        rows = [
            {
                "subject": c.subject,
                "change": c.change,
                "line": c.rule.source,
                "grant": asdict_rule(c.rule),
                "note": c.note,
                "witness": _request(c.witness) if c.witness is not None else None,
            }
            for c in changes
        ]
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _request(a: Attributes) -> dict[str, object]:
    """A witness as a SubjectAccessReview spec would name it."""
    spec: dict[str, object] = {"user": a.user, "groups": list(a.groups)}
    if a.resource_request:
        spec["resourceAttributes"] = {
            "verb": a.verb,
            "namespace": a.namespace,
            "group": a.api_group,
            "resource": a.resource,
        }
    else:
        spec["nonResourceAttributes"] = {"verb": a.verb, "path": a.path}
    return spec


def asdict_rule(rule: Rule) -> dict[str, object]:
    fields = ("user", "group", "readonly", "api_group", "resource", "namespace", "path")
    return {name: getattr(rule, name) for name in fields}
