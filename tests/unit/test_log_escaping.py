"""Log lines quote clients (paths, CNs, user names, exception messages): none may start a line.

Through a real server: tests/integration/test_strict_requests.py. Here the formatters' edges: every
control character, the Unicode line separators, and an exception whose message holds a newline.
"""

from __future__ import annotations

import json
import logging
import sys

import pytest

from gatekeeper.server.logs import TEXT_FORMAT, JSONFormatter, TextFormatter, escape

UNSAFE = "".join(map(chr, [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]))


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    return logging.LogRecord("gatekeeper.caller", logging.INFO, __file__, 1, message, args,
                             sys.exc_info() if exc else None)


@pytest.mark.parametrize("char", list(UNSAFE))
def test_every_control_character_is_escaped(char: str) -> None:
    text = TextFormatter(TEXT_FORMAT).format(record("401 POST %s", f"/x{char}y"))
    assert char not in text and text.count("\n") == 0 and "/x\\" in text
    line = JSONFormatter().format(record("user %s", f"a{char}b"))
    assert char not in line and char not in json.loads(line)["message"]


def test_plain_text_is_left_alone() -> None:
    assert escape("403 POST /authorize for user 'café'") == "403 POST /authorize for user 'café'"
    assert escape("a\nb\tc\x1b") == "a\\nb\\tc\\x1b"


def test_an_exception_message_stays_on_its_line_in_text() -> None:
    try:
        raise ValueError("bad\n2026-01-01 00:00:00,000 INFO gatekeeper.caller: FORGED")
    except ValueError:
        text = TextFormatter(TEXT_FORMAT).format(record("unexpected error", exc=True))
    assert text.splitlines()[0].endswith("unexpected error")
    assert text.splitlines()[-1] == "ValueError: bad\\n2026-01-01 00:00:00,000 INFO gatekeeper.caller: FORGED"
    assert not any(line.startswith("2026-01-01") for line in text.splitlines())
