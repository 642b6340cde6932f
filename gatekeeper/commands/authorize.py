"""`gatekeeper authorize`: SubjectAccessReviews in, the same reviews with status out."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gatekeeper.api.authorization import parse_subject_access_review, review_response
from gatekeeper.authz.evaluator import Evaluator, load_evaluator
from gatekeeper.authz.policy import PolicyError
from gatekeeper.commands.io import answer_each
from gatekeeper.config import Settings
from gatekeeper.config.files import input_or_stdin
from gatekeeper.config.flags import add_flag


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "authorize", help="decide SubjectAccessReviews offline against an ABAC policy file"
    )
    add_flag(p, Settings, "authorization_policy_file", required=True,
             help="the ABAC policy, one rule per line")
    add_flag(p, Settings, "authorization_deny_unmatched")
    p.add_argument("input", nargs="?", default="-", type=input_or_stdin, metavar="FILE",
                   help="SubjectAccessReviews: a JSON document or JSON lines; - for stdin")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        evaluator = load_evaluator(args.authorization_policy_file)
    except PolicyError as exc:
        print(f"gatekeeper authorize: {exc}", file=sys.stderr)
        return 1
    try:
        return _decide_all(evaluator, args.input, args.authorization_deny_unmatched)
    except OSError as exc:
        print(f"gatekeeper authorize: {args.input}: {exc.strerror}", file=sys.stderr)
        return 1


def _decide_all(evaluator: Evaluator, source: str, deny_unmatched: bool) -> int:
    def answer(doc: Any) -> dict[str, Any]:
        version, attributes = parse_subject_access_review(doc)
        return review_response(doc, version, evaluator.authorize(attributes, deny_unmatched))

    return answer_each("authorize", source, answer)
