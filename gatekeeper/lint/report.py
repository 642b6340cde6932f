"""One finding model for every linted file kind, and its text, JSON and SARIF 2.1.0 renderings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import orjson

TOOL_URI = "https://github.com/gatekeeper/gatekeeper#lint-in-ci"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class RuleInfo:
    id: str
    severity: Severity
    summary: str


@dataclass(frozen=True, slots=True)
class Finding:
    file: str
    line: int  # 1-based; 1 when the finding is about the whole file
    column: int
    rule: RuleInfo
    message: str
    hint: str = ""


def exit_code(findings: Sequence[Finding]) -> int:
    return 1 if any(f.rule.severity is Severity.ERROR for f in findings) else 0


def as_text(findings: Sequence[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"{f.file}:{f.line}:{f.column}: {f.rule.severity.value}: {f.message} [{f.rule.id}]")
        if f.hint:
            lines.append(f"    hint: {f.hint}")
    return "\n".join(lines) + ("\n" if lines else "")


def as_json(findings: Sequence[Finding]) -> str:
    rows = [
        {
            **{k: v for k, v in asdict(f).items() if k != "rule"},
            "rule": f.rule.id,
            "severity": f.rule.severity.value,
        }
        for f in findings
    ]
    return orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n"


def as_sarif(findings: Sequence[Finding], rules: Sequence[RuleInfo], tool: str = "gatekeeper lint") -> str:
    sarif: dict[str, Any] = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": tool,
                        "informationUri": TOOL_URI,
                        "rules": [
                            {
                                "id": r.id,
                                "shortDescription": {"text": r.summary},
                                "defaultConfiguration": {"level": r.severity.value},
                            }
                            for r in rules
                        ],
                    }
                },
                "results": [_sarif_result(f) for f in findings],
            }
        ],
    }
    return orjson.dumps(sarif, option=orjson.OPT_INDENT_2).decode() + "\n"


def _sarif_result(f: Finding) -> dict[str, Any]:
    text = f"{f.message} (hint: {f.hint})" if f.hint else f.message
    region = {"startLine": max(f.line, 1), "startColumn": max(f.column, 1)}
    return {
        "ruleId": f.rule.id,
        "level": f.rule.severity.value,
        "message": {"text": text},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": f.file}, "region": region}}],
    }
