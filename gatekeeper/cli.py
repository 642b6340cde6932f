"""The `gatekeeper` command. Each subcommand lives in gatekeeper/commands/<name>.py."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Module names under gatekeeper.commands; each defines register(subparsers).
COMMANDS = (
    "serve",
    "authorize",
    "lint",
    "authenticate",
    "hash_password",
    "certs",
    "webhook_config",
    "admit",
    "state",
    "quota",
    "replay",
    "who_can",
    "cluster_audit",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gatekeeper",
        description="Authentication, ABAC authorization and admission for Kubernetes-style clusters.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"gatekeeper.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
