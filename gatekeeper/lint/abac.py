"""Lint rules for ABAC policy files: what each line really grants, against what it appears to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from gatekeeper.authz.policy import (
    INTERNAL_SPEC_FIELDS,
    V0_FIELDS,
    V1BETA1_SPEC_FIELDS,
    DecodedLine,
    Format,
    Rule,
    gc_paused,
    scan_lines,
    to_rule,
)
from gatekeeper.lint.coverage import grant, shadowed
from gatekeeper.lint.report import Finding, RuleInfo, Severity
from gatekeeper.lint.subjects import KnownSubjects

E, W = Severity.ERROR, Severity.WARNING
LOAD_ERROR = RuleInfo("abac-load-error", E, "kube-apiserver refuses this policy file")
EVERYONE = RuleInfo(
    "abac-everyone-grant", E, "a line without user or group grants every authenticated user everything"
)
UNKNOWN_KEY = RuleInfo("abac-unknown-key", E, "a key Kubernetes ignores, so the rule is wider than it reads")
STAR_SUBJECT = RuleInfo("abac-star-discards-subject", E, '"*" user or group discards the other subject field')
UNSET_NAMESPACE = RuleInfo(
    "abac-unset-namespace", W, "v1beta1: an unset namespace matches only cluster-scope"
)
UNSET_API_GROUP = RuleInfo("abac-unset-apigroup", W, "v1beta1: an unset apiGroup matches only the core group")
NO_SUBJECT = RuleInfo("abac-no-subject", W, "v1beta1: a rule with neither user nor group matches nobody")
SUBRESOURCE = RuleInfo("abac-subresource", W, "a resource with '/' never matches (subresources are ignored)")
YAML_LINE = RuleInfo("abac-yaml-line", W, "the line is not JSON; Kubernetes reads it as YAML")
DUPLICATE = RuleInfo("abac-duplicate", W, "the line grants exactly what an earlier line grants")
SHADOWED = RuleInfo("abac-shadowed", W, "every grant of the line is already given by another line")
UNKNOWN_USER = RuleInfo("abac-unknown-user", W, "a user that no given credential source knows")
UNKNOWN_GROUP = RuleInfo("abac-unknown-group", W, "a group that no given credential source knows")
BROAD_WRITE = RuleInfo("abac-broad-write", W, "write access to every resource in every namespace")
RULES = (
    LOAD_ERROR,
    EVERYONE,
    UNKNOWN_KEY,
    STAR_SUBJECT,
    UNSET_NAMESPACE,
    UNSET_API_GROUP,
    NO_SUBJECT,
    SUBRESOURCE,
    YAML_LINE,
    DUPLICATE,
    BROAD_WRITE,
    SHADOWED,
    UNKNOWN_USER,
    UNKNOWN_GROUP,
)

TYPE_META = {"apiversion", "kind"}
KNOWN_V0 = frozenset(V0_FIELDS)
KNOWN_V1BETA1 = frozenset(V1BETA1_SPEC_FIELDS)
KNOWN_INTERNAL = frozenset(INTERNAL_SPEC_FIELDS)


class _At(Protocol):
    """Makes a finding on the current line, at the column of `key` when given."""

    def __call__(self, info: RuleInfo, message: str, hint: str = "", key: str = "") -> Finding: ...


def lint_policy(path: Path, name: str | None = None, known: KnownSubjects | None = None) -> list[Finding]:
    """Every finding for one policy file; `known` adds the unknown-user/group checks."""
    display = name or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [Finding(display, 1, 1, LOAD_ERROR, f"cannot read policy file: {exc.strerror}")]
    findings: list[Finding] = []
    lines: list[tuple[str, DecodedLine, Rule]] = []
    with gc_paused():
        _scan_into(data, display, findings, lines)
        seen: dict[tuple[object, ...], int] = {}
        for text, decoded, rule in lines:
            findings.extend(_lint_line(display, text, decoded, rule, seen, known))
        findings.extend(_shadowed(display, [rule for _, _, rule in lines]))
        findings.sort(key=lambda f: (f.line, f.rule.severity is not Severity.ERROR, f.rule.id))
    return findings


def _scan_into(
    data: bytes, display: str, findings: list[Finding], lines: list[tuple[str, DecodedLine, Rule]]
) -> None:
    for line in scan_lines(data, display):
        if line.error is not None:  # each bad line, worded as the loader words it
            # the loader names no line for an over-long one (as Kubernetes); the linter does
            findings.append(Finding(display, line.error.line or line.number, 1, LOAD_ERROR, line.error.cause))
        elif line.decoded is not None:
            rule = to_rule(line.decoded, f"{display}:{line.number}", len(lines))
            lines.append((line.text, line.decoded, rule))


def _shadowed(name: str, rules: list[Rule]) -> Iterator[Finding]:
    for rule, coverer in shadowed(rules):
        if grant(rule) == grant(coverer):
            continue  # reported as a duplicate
        line = int(rule.source.rsplit(":", 1)[1])
        other = coverer.source.rsplit(":", 1)[1]
        yield Finding(
            name,
            line,
            1,
            SHADOWED,
            f"every request this line allows, line {other} already allows",
            f"delete this line, or narrow line {other}",
        )


def _lint_line(
    name: str,
    text: str,
    line: DecodedLine,
    rule: Rule,
    seen: dict[tuple[object, ...], int],
    known: KnownSubjects | None,
) -> Iterator[Finding]:

    def at(info: RuleInfo, message: str, hint: str = "", key: str = "") -> Finding:
        column = text.find(f'"{key}"') + 1 if key and f'"{key}"' in text else 1
        return Finding(name, line.number, column, info, message, hint)

    if line.via_yaml:
        yield at(YAML_LINE, "this line is decoded as YAML, not JSON", "write the rule as one JSON object")
    yield from _unknown_keys(line, at)
    yield from _subject_findings(line, rule, at)
    yield from _scope_findings(line, rule, at)
    if known is not None:
        yield from _unknown_subjects(rule, known, at)
    key = grant(rule)
    if key in seen:
        yield at(DUPLICATE, f"grants exactly what line {seen[key]} grants", "delete one of the two lines")
    else:
        seen[key] = line.number


def _is_type_meta(key: str) -> bool:
    return key in ("apiVersion", "kind") or key.casefold() in TYPE_META


def _unknown_keys(line: DecodedLine, at: _At) -> Iterator[Finding]:
    if line.format is Format.V0:
        known, where = KNOWN_V0, ""
    else:
        spec_key = "spec" if line.format is Format.V1BETA1 else "Spec"
        for key in line.value:
            if key != spec_key and not _is_type_meta(key):
                yield at(
                    UNKNOWN_KEY,
                    f'"{key}" outside {spec_key} is ignored by Kubernetes',
                    _suggest(key, line) or f"move it into {spec_key}",
                    key,
                )
        known = KNOWN_V1BETA1 if line.format is Format.V1BETA1 else KNOWN_INTERNAL
        where = f" in {spec_key}"
    for key in line.body:
        if key in known or (line.format is Format.V0 and _is_type_meta(key)):
            continue
        yield at(
            UNKNOWN_KEY,
            f'unknown key "{key}"{where} is ignored by Kubernetes, which widens the rule',
            _suggest(key, line),
            key,
        )


def _suggest(key: str, line: DecodedLine) -> str:
    if key == "ns":
        return 'the legacy "ns" key is not a field: use "namespace"'
    fields = {Format.V0: V0_FIELDS, Format.V1BETA1: V1BETA1_SPEC_FIELDS}.get(
        line.format, INTERNAL_SPEC_FIELDS
    )
    if line.format is Format.V0 and key in V1BETA1_SPEC_FIELDS:
        return f'"{key}" is a v1beta1 field: write the rule in the v1beta1 form with "{key}" inside spec'
    for field in fields:
        if field.casefold() == key.casefold():
            return f'keys are case-sensitive: did you mean "{field}"?'
    return ""


def _subject_findings(line: DecodedLine, rule: Rule, at: _At) -> Iterator[Finding]:
    body, fmt = line.body, line.format
    user, group = (
        (body.get("user") or "", body.get("group") or "") if fmt is not Format.INTERNAL else ("", "")
    )
    if (user == "*" and group not in ("", "*")) or (group == "*" and user not in ("", "*")):
        dropped = f'group "{group}"' if user == "*" else f'user "{user}"'
        yield at(
            STAR_SUBJECT,
            f'"*" turns this rule into one for every authenticated user; {dropped} is dropped',
            'remove "*" to restrict the rule, or remove the other subject field',
        )
    everything = (rule.resource, rule.namespace, rule.api_group, rule.path) == ("*", "*", "*", "*")
    if fmt is Format.V0 and not user and not group and everything:
        verbs = "read" if rule.readonly else "do"
        yield at(
            EVERYONE,
            f"no user or group: every authenticated user may {verbs} everything, everywhere",
            'name a "user" or "group" (check the spelling and case of the keys)',
        )
    elif fmt is Format.V1BETA1 and not rule.user and not rule.group:
        yield at(
            NO_SUBJECT,
            "neither user nor group is set, so this rule matches no request",
            'set "user" or "group" inside spec',
        )


def _scope_findings(line: DecodedLine, rule: Rule, at: _At) -> Iterator[Finding]:
    spec = line.body
    if line.format is Format.V1BETA1 and spec.get("resource"):
        if spec.get("namespace") is None:  # an explicit "" says cluster-scope is meant
            yield at(
                UNSET_NAMESPACE,
                "namespace is unset: the rule matches only cluster-scoped and "
                "all-namespaces requests (cross-namespace reads)",
                'set "namespace" ("*" for every one)',
            )
        if spec.get("apiGroup") is None:
            yield at(
                UNSET_API_GROUP,
                "apiGroup is unset: the rule matches only the core group",
                'set "apiGroup" ("*" for every group)',
            )
    if "/" in rule.resource:
        yield at(
            SUBRESOURCE,
            f'resource "{rule.resource}" never matches: requests carry the resource '
            "and subresource separately",
            f'use "{rule.resource.split("/")[0]}"',
            "resource",
        )
    if not rule.readonly and rule.resource == "*" and rule.namespace == "*" and (rule.user or rule.group):
        yield at(
            BROAD_WRITE,
            "grants every verb on every resource in every namespace",
            'add "readonly": true, or name the resources and namespaces',
        )


def _unknown_subjects(rule: Rule, known: KnownSubjects, at: _At) -> Iterator[Finding]:
    if rule.user and rule.user != "*" and not known.knows_user(rule.user):
        yield at(
            UNKNOWN_USER,
            f"user {rule.user!r} is in none of the credential sources ({known.describe()})",
            "check the spelling, or add the user to a credential source",
            "user",
        )
    if rule.group and rule.group != "*" and not known.knows_group(rule.group):
        yield at(
            UNKNOWN_GROUP,
            f"group {rule.group!r} is in none of the credential sources ({known.describe()})",
            "check the spelling, or add the group to a credential source",
            "group",
        )
