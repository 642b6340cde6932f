"""`gatekeeper who-can VERB RESOURCE|PATH`: every user and group an ABAC policy lets make a request.

Exit status: 0 answered, 2 usage error or unreadable file.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from gatekeeper.authn.csvfile import CredentialFileError, read_rows
from gatekeeper.authn.user import UserInfo
from gatekeeper.authz.policy import PolicyError, load_policy_file
from gatekeeper.config import Settings
from gatekeeper.config.flags import add_flag
from gatekeeper.lint.whocan import Grant, KnownUser, grants, known_users, request_of


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "who-can", help="every user and group an ABAC policy lets make one request, with the line"
    )
    p.add_argument("verb", help="get, list, create, ... (for a path: the lower-case HTTP method)")
    p.add_argument(
        "target",
        metavar="RESOURCE|PATH",
        help="a resource as kubectl spells it (pods, deployments.apps), or a path starting with /",
    )
    p.add_argument(
        "-n",
        "--namespace",
        default="",
        metavar="NAMESPACE",
        help="the request's namespace (default: none, a cluster-scoped or all-namespaces request)",
    )
    add_flag(p, Settings, "authorization_policy_file", repeat=True, required=True,
             help="the ABAC policy (repeatable: the files are read as one policy, in order)")
    for name, kind in (("token_auth_file", "token"), ("basic_auth_file", "basic-auth")):
        add_flag(p, Settings, name, repeat=True,
                 help=f"also decide for each user of this {kind} file, with its groups (repeatable)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        rules = [rule for path in args.authorization_policy_file for rule in load_policy_file(path).rules]
        users = _credential_users(args.token_auth_file, "token file", "token")
        users += _credential_users(args.basic_auth_file, "basic auth file", "password")
    except (PolicyError, CredentialFileError) as exc:
        print(f"gatekeeper who-can: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"gatekeeper who-can: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    request = request_of(args.verb, args.target, args.namespace)
    found, allowed = grants(rules, request), known_users(rules, request, users)
    sys.stdout.write(_text(found, allowed, users) if args.format == "text" else _json(found, allowed))
    return 0


def _credential_users(paths: list[Path], kind: str, secret_name: str) -> list[tuple[UserInfo, str]]:
    return [(row.user, f"{path}:{row.line}") for path in paths for row in read_rows(path, kind, secret_name)]


def _text(found: list[Grant], allowed: list[KnownUser], users: list[tuple[UserInfo, str]]) -> str:
    lines = ["no rule allows it"] if not found else [f"{g.subject:<40} {g.source}" for g in found]
    if users:
        lines.append(f"\nusers of the credential files allowed ({len(allowed)} of {len(users)}):")
        for k in allowed:
            groups = f" (groups {', '.join(k.user.groups)})" if k.user.groups else ""
            lines.append(f"  {k.user.name}{groups}  {k.origin}  by {k.source}")
    return "\n".join(lines) + "\n"


def _json(found: list[Grant], allowed: list[KnownUser]) -> str:
    doc = {
        "grants": [asdict(g) for g in found],
        "knownUsers": [
            {"user": k.user.name, "groups": list(k.user.groups), "origin": k.origin, "grantedBy": k.source}
            for k in allowed
        ],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
