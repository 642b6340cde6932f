"""`gatekeeper lint`: what ABAC policy files really grant; exit 0 clean, 1 errors, 2 usage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gatekeeper.lint import abac
from gatekeeper.lint.report import Finding, as_json, as_sarif, as_text, exit_code

POLICY_SUFFIXES = (".jsonl", ".abac")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("lint", help="lint ABAC policy files for CI")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files, or folders of *.jsonl")
    p.add_argument("--kind", choices=["abac"], help="treat every file as this kind")
    p.add_argument("--format", choices=["text", "json", "sarif"], default="text")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    files: list[Path] = []
    for path in args.paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in POLICY_SUFFIXES))
        elif path.is_file():
            if args.kind is None and path.suffix not in POLICY_SUFFIXES:
                print(
                    f"gatekeeper lint: {path}: not an ABAC policy file (*.jsonl); use --kind abac",
                    file=sys.stderr,
                )
                return 2
            files.append(path)
        else:
            print(f"gatekeeper lint: {path}: no such file or folder", file=sys.stderr)
            return 2
    findings: list[Finding] = [f for file in files for f in abac.lint_policy(file)]
    render = {"text": as_text, "json": as_json}.get(args.format)
    sys.stdout.write(render(findings) if render else as_sarif(findings, abac.RULES))
    return exit_code(findings)
