"""Reading review documents for the offline commands: one JSON document, or JSON lines."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    line: int
    value: Any
    error: str | None = None


def read_text(path: str) -> tuple[str, str]:
    """(display name, text) of a file, or of stdin for "-"."""
    if path == "-":
        return "<stdin>", sys.stdin.read()
    return path, Path(path).read_text(encoding="utf-8")


def documents(path: str) -> Iterator[Document]:
    """Yield each JSON document: the whole input if it is one document, else one per line."""
    name, text = read_text(path)
    try:
        yield Document(name, 1, orjson.loads(text))
        return
    except orjson.JSONDecodeError:
        pass
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield Document(name, number, orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            yield Document(name, number, None, f"not valid JSON: {exc}")


def write_json_line(out: TextIO, value: Any) -> None:
    out.write(orjson.dumps(value).decode())
    out.write("\n")
