"""YAML documents and YAML errors that never repeat the text: a manifest line may hold a password.

PyYAML's message quotes the offending line under a caret, and some problems quote what they
found (an alias, a tag). The errors here say only where (document, line, column) and what kind
of problem; /readyz, the logs and the CLI show them as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from gatekeeper.errors import InvalidFile

# A quoted part of PyYAML's problem that may be kept: a token name ('<scalar>') or one character.
_HARMLESS = re.compile(r"<[a-z ]+>|\\?.|\\x[0-9a-f]{2}|\\u[0-9a-f]{4}")
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
MAX_PROBLEM = 120


class YAMLTextError(InvalidFile):
    """Text that is not YAML; the message names the document and the 1-based line and column."""

    def __init__(self, message: str, document: int | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.document = document
        self.line = line


def _redact(match: re.Match[str]) -> str:
    inner = match.group(1) if match.group(1) is not None else match.group(2)
    return match.group(0) if _HARMLESS.fullmatch(inner) else "'…'"


def problem(exc: yaml.YAMLError) -> str:
    """What PyYAML found wrong, with anything it quotes from the text left out."""
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [exc.problem or "", f"({exc.context})" if exc.context else ""]
        text = " ".join(part for part in parts if part) or "malformed"
    elif isinstance(exc, yaml.reader.ReaderError):
        text = "a character YAML does not allow (a control character, or bytes that are not text)"
    else:
        text = "malformed"
    return _QUOTED.sub(_redact, text)[:MAX_PROBLEM]


def mark_of(exc: yaml.YAMLError) -> tuple[int, int] | None:
    """The 1-based (line, column) where PyYAML stopped, if it says."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return (mark.line + 1, mark.column + 1) if mark is not None else None


def describe(exc: yaml.YAMLError) -> str:
    """`line L, column C: problem`, never the line itself."""
    mark = mark_of(exc)
    return f"line {mark[0]}, column {mark[1]}: {problem(exc)}" if mark else problem(exc)


def documents(text: str, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Iterator[tuple[int, Any]]:
    """(1-based start line, value) of each document; YAMLTextError names the document that failed."""
    try:
        reader = loader(text)
    except yaml.reader.ReaderError as exc:  # checked before any document is read
        line = text.count("\n", 0, exc.position) + 1
        raise YAMLTextError(f"not valid YAML or JSON: line {line}: {problem(exc)}", 0, line) from None
    try:
        yield from _documents(reader)
    finally:
        reader.dispose()


def _documents(reader: yaml.SafeLoader) -> Iterator[tuple[int, Any]]:
    index = 0
    while True:
        try:
            if not reader.check_node():
                return
            node = reader.get_node()
            value = reader.construct_document(node)
        except yaml.YAMLError as exc:
            mark = mark_of(exc)
            message = f"document {index}: not valid YAML or JSON: {describe(exc)}"
            raise YAMLTextError(message, index, mark[0] if mark else None) from None
        except RecursionError:
            raise YAMLTextError(f"document {index}: nested too deeply", index) from None
        yield (node.start_mark.line + 1 if node is not None else 1), value
        index += 1
