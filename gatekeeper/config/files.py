"""The files a command reads, checked when its flags are parsed: a missing, unreadable or
misplaced file is one line naming the flag, the file and the fix (argparse puts the flag in
front; gatekeeper/commands/usage.py keeps it to one line), never a traceback later."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

IN_CLUSTER = "in-cluster"  # store/kube/client.py's IN_CLUSTER, without importing the client
CERTS_HINT = "`gatekeeper certs init` makes a dev CA, server certificate and client certificates"


def problem(path: Path, folder_ok: bool = False) -> str | None:
    """Why gatekeeper cannot read `path`, with the fix; None if it can."""
    try:
        is_dir = path.is_dir()
        exists = is_dir or path.exists()
    except OSError as exc:  # a file where a folder should be on the way, a name too long
        return f"{exc.strerror or exc}; check the path"
    if not exists:
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        return f"no such file{where}; check the path"
    if is_dir and not folder_ok:
        return "is a folder, expected a file; name a file in it"
    if not os.access(path, os.R_OK | (os.X_OK if is_dir else 0)):
        return "permission denied; make it readable by this user or run as one who can read it"
    return None


def _checked(text: str, folder_ok: bool, hint: str = "") -> Path:
    path = Path(text)
    found = problem(path, folder_ok)
    if found is not None:
        raise argparse.ArgumentTypeError(f"{text}: {found}{f' ({hint})' if hint else ''}")
    return path


def input_file(text: str) -> Path:
    """argparse type of a flag naming a file gatekeeper reads."""
    return _checked(text, folder_ok=False)


def input_path(text: str) -> Path:
    """argparse type of a flag naming a file or a folder of files gatekeeper reads."""
    return _checked(text, folder_ok=True)


def tls_file(text: str) -> Path:
    """A certificate or key file: the hint says how to make one."""
    return _checked(text, folder_ok=False, hint=CERTS_HINT)


def input_or_stdin(text: str) -> str:
    """A positional input: a file, or - for stdin."""
    return text if text == "-" else str(_checked(text, folder_ok=False))


def announce_stdin(what: str) -> None:
    """Reading stdin from a terminal looks like a hang: say what is awaited and how to end it."""
    if sys.stdin.isatty():
        print(f"gatekeeper: reading {what} from stdin; Ctrl-D to end (or name a file)", file=sys.stderr)


def kubeconfig(text: str) -> str:
    """--kubeconfig: a file, or in-cluster (the pod's service account)."""
    return text if text == IN_CLUSTER else str(input_file(text))
