"""`gatekeeper authenticate`: TokenReviews in, the same reviews with status out (JSON lines)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gatekeeper.api.authentication import parse_token_review, token_review_response
from gatekeeper.authn.csvfile import CredentialFileError
from gatekeeper.authn.tokenfile import load_token_file
from gatekeeper.authn.tokenreview import review_token
from gatekeeper.commands.io import answer_each
from gatekeeper.config import Settings
from gatekeeper.config.files import input_or_stdin
from gatekeeper.config.flags import add_flag


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "authenticate", help="decide TokenReviews offline against a token file"
    )
    add_flag(p, Settings, "token_auth_file", required=True)
    add_flag(p, Settings, "api_audiences", help="comma-separated audiences the tokens are valid for "
             "(default: any; answers then leave the audience check to the API server)")
    p.add_argument("input", nargs="?", default="-", type=input_or_stdin, metavar="FILE",
                   help="TokenReviews: a JSON document or JSON lines; - for stdin")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        tokens = load_token_file(args.token_auth_file)
    except CredentialFileError as exc:
        print(f"gatekeeper authenticate: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gatekeeper authenticate: {args.token_auth_file}: {exc.strerror}", file=sys.stderr)
        return 1
    api_audiences: tuple[str, ...] = args.api_audiences

    def answer(doc: Any) -> dict[str, Any]:
        version, token, audiences = parse_token_review(doc)
        return token_review_response(doc, version, review_token(tokens, token, audiences, api_audiences))

    try:
        return answer_each("authenticate", args.input, answer)
    except OSError as exc:
        print(f"gatekeeper authenticate: {args.input}: {exc.strerror}", file=sys.stderr)
        return 1
