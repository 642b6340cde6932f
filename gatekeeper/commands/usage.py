"""The parser every gatekeeper command uses: errors in one line (with a did-you-mean for an
unknown flag), a help text that shows every flag's default, and the command overview when a
command is missing."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

_REQUIRED_COMMAND = re.compile(r"the following arguments are required: (COMMAND|ACTION|SUBCOMMAND)\b")
_ARGUMENT = re.compile(r"^argument ([^:/ ]+)[^:]*: ")


def default_text(value: Any) -> str:
    if value is None or (isinstance(value, list | tuple) and not value):
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # seconds: "300", as the flag is usually written
    return str(value)


def shows_default(help_text: str) -> bool:
    return "(default" in help_text or "default:" in help_text


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            action.default is argparse.SUPPRESS
            or isinstance(action, argparse._SubParsersAction)
            or action.required
            or shows_default(text)
            or (not action.option_strings and action.nargs not in ("?", "*"))
        ):
            return text
        default = default_text(action.default).replace("%", "%%")
        return f"{text} (default: {default})"


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if _REQUIRED_COMMAND.search(message):
            self.print_help(sys.stderr)
            self.exit(2)
        message = _ARGUMENT.sub(lambda m: f"{m.group(1)} ", message)
        if "; " not in message:  # no fix of its own: point at the flags
            message += f" (see `{self.prog} --help`)"
        self.exit(2, f"{self.prog}: {message}\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self._subparsers is None:  # a command's own parser: the extras are its to name
            self.error(self.unknown(extras))
        return parsed, extras

    def unknown(self, extras: list[str]) -> str:
        word = extras[0]
        if not word.startswith("-"):
            return f"unexpected argument {word!r}"
        flag = word.split("=", 1)[0]
        return f"unknown flag {flag}{did_you_mean(flag, self._option_string_actions)}"


def did_you_mean(flag: str, known: Sequence[str] | dict[str, Any]) -> str:
    options = [o for o in known if o.startswith("--")]
    stem = flag.lstrip("-")
    close = difflib.get_close_matches(flag, options, n=2, cutoff=0.7)
    close += [o for o in options if len(stem) >= 3 and stem in o and o not in close]
    return f" (did you mean {' or '.join(close[:3])}?)" if close else ""
