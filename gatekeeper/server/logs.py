"""Server logs: text for people, or one JSON object per line (`--log-format json`) for collectors.

The configuration is handed to uvicorn (log_config), so worker processes log the same way.
A JSON line has time, level, logger and message, and `exception` (the traceback) when there
is one; tracebacks go to the log only, never into a response.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def log_config(log_format: str, level: str) -> dict[str, Any]:
    """A logging.config dictConfig for uvicorn: the root logger and uvicorn's own, one format."""
    formatter: dict[str, Any] = (
        {"()": "gatekeeper.server.logs.JSONFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
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
