"""Server logs: text for people, or one JSON object per line (`--log-format json`) for collectors.

The configuration is handed to uvicorn (log_config), so worker processes log the same way.
A JSON line has time, level, logger and message, and `exception` (the traceback) when there
is one; tracebacks go to the log only, never into a response.

A message often quotes what a client sent (a path, a certificate's CN, a user name), so in both
formats its control characters, DEL and the Unicode line separators are written as escapes
(`\\n`, `\\x1b`, `\\u2028`): no client can start a line of its own or drive a terminal.
Tracebacks keep their newlines (in text, the exception's message is escaped too).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """`text` on one line, every control character visible as an escape."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escaped, text)


# What JSON leaves raw in a string but a line reader may still break on (Python's splitlines does):
# DEL, the C1 controls (UTF-8 C2 80..C2 9F) and U+2028/U+2029 (E2 80 A8/A9).
_RAW_IN_JSON = re.compile(b"\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")


def json_line(data: bytes) -> bytes:
    """orjson's output with those characters written as \\u escapes: the same JSON, one line for
    every reader."""
    if _RAW_IN_JSON.search(data) is None:
        return data
    return _RAW_IN_JSON.sub(lambda m: b"\\u%04x" % ord(m[0].decode()), data)


def _escaped(match: re.Match[str]) -> str:
    char = match[0]
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


class TextFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        """The traceback's lines as they are; the exception's own message, which may quote a
        client, on one line."""
        text = super().formatException(ei)
        message = str(ei[1]) if ei and ei[1] is not None else ""
        return text.replace(message, escape(message)) if _UNSAFE.search(message) else text


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": escape(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json_line(orjson.dumps(entry)).decode()


def log_config(log_format: str, level: str) -> dict[str, Any]:
    """A logging.config dictConfig for uvicorn: the root logger and uvicorn's own, one format."""
    formatter: dict[str, Any] = (
        {"()": "gatekeeper.server.logs.JSONFormatter"} if log_format == "json"
        else {"()": "gatekeeper.server.logs.TextFormatter", "fmt": TEXT_FORMAT}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            name: {"handlers": [], "level": level.upper(), "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure(log_format: str, level: str) -> None:
    """Apply the same configuration in this process (before uvicorn starts)."""
    import logging.config

    logging.config.dictConfig(log_config(log_format, level))
