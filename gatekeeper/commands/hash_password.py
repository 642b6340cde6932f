"""`gatekeeper hash-password`: a hash for the basic-auth file's password column.

The password is read from the terminal (not echoed, asked twice) or from standard input, never
from the command line, where other users could see it in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from gatekeeper.authn.passwords import ALGORITHMS, hash_password


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "hash-password",
        help="hash a password for --basic-auth-file (scrypt by default)",
        description="Prints a hash for the password column of a --basic-auth-file row. The password is "
        "read from the terminal, or from the first line of standard input when it is not a terminal.",
    )
    p.add_argument("--algorithm", choices=ALGORITHMS, default="scrypt", help="the hash kube-apiserver-style "
                   "basic auth in gatekeeper verifies")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("gatekeeper hash-password: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("gatekeeper hash-password: empty password", file=sys.stderr)
        return 1
    print(hash_password(password, args.algorithm))
    if sys.stdout.isatty():
        print('put it in the basic-auth file in double quotes: "<hash>",user,uid[,"group1,group2"]',
              file=sys.stderr)
    return 0
