"""The `gatekeeper` command. Each subcommand lives in gatekeeper/commands/<name>.py."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import sys

from gatekeeper.commands.usage import Parser

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
    parser = Parser(
        prog="gatekeeper",
        description="Authentication, ABAC authorization and admission for Kubernetes-style clusters.",
        epilog="`gatekeeper COMMAND --help` shows a command's flags. Start with `gatekeeper serve`: "
        "HTTPS on 127.0.0.1:8443 with the packaged example policy and a dev PKI in its data directory.",
    )
    parser.add_argument("--version", action="version", version=f"gatekeeper {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    for name in COMMANDS:
        importlib.import_module(f"gatekeeper.commands.{name}").register(sub)
    return parser


def version() -> str:
    try:
        return importlib.metadata.version("gatekeeper")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        from gatekeeper import __version__

        return __version__


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # usage errors (2), --help and --version (0): a code, as commands return
        return exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 2
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # what a command did not report itself: still one line, with the flag
        print(f"gatekeeper {args.command}: {file_error(args, exc)}", file=sys.stderr)
        return 1
    return code


def file_error(args: argparse.Namespace, exc: OSError) -> str:
    """`--flag FILE: reason`, finding the flag whose value is the file the error names."""
    name = str(exc.filename) if exc.filename is not None else None
    reason = exc.strerror or str(exc)
    for dest, value in vars(args).items():
        values = value if isinstance(value, list | tuple) else [value]
        if name is not None and any(str(v) == name for v in values):
            return f"--{dest.replace('_', '-')} {name}: {reason}"
    return f"{name}: {reason}" if name else reason


if __name__ == "__main__":
    sys.exit(main())
