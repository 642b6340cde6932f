"""Reading review documents for the offline commands: one JSON document, or JSON lines."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from gatekeeper.config.files import announce_stdin
from gatekeeper.k8s.fields import InvalidObject


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    line: int
    value: Any
    error: str | None = None


def read_text(path: str, what: str = "the input") -> tuple[str, str]:
    """(display name, text) of a file, or of stdin for "-"."""
    if path == "-":
        announce_stdin(what)
        return "<stdin>", sys.stdin.read()
    return path, Path(path).read_text(encoding="utf-8")


def documents(path: str, what: str = "JSON documents") -> Iterator[Document]:
    """Yield each JSON document: the whole input if it is one document, else one per line."""
    name, text = read_text(path, what)
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


def answer_each(
    command: str,
    source: str,
    answer: Callable[[Any], Any],
    on_invalid: Callable[[Any, InvalidObject], Any] | None = None,
) -> int:
    """Write `answer(document)` for each review document, one JSON line each, in input order.

    A document that is not JSON, or that `answer` refuses with InvalidObject, is named on stderr
    as `SOURCE:LINE: problem`; `on_invalid` may still give an answer for it (an AdmissionReview
    refusal). Returns 1 if any document was invalid, else 0.
    """
    failures = 0
    for doc in documents(source):
        try:
            if doc.error:
                raise InvalidObject(doc.error)
            response = answer(doc.value)
        except InvalidObject as exc:
            print(f"gatekeeper {command}: {doc.source}:{doc.line}: {exc}", file=sys.stderr)
            failures += 1
            if on_invalid is None:
                continue
            response = on_invalid(doc.value, exc)
        write_json_line(sys.stdout, response)
    return 1 if failures else 0
