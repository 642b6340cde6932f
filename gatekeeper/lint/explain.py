"""`lint --explain`: the effective permissions of one subject; `lint --diff`: what a change grants."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gatekeeper.authn.user import AUTHENTICATED
from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.evaluator import subject_matches
from gatekeeper.authz.policy import Rule
from gatekeeper.lint.coverage import RuleIndex, grant, matches_nobody
from gatekeeper.lint.witness import Witnesses

READ_VERBS = "get, list, watch"


@dataclass(frozen=True, slots=True)
class Permission:
    verbs: str
    api_group: str
    resource: str
    namespace: str
    path: str
    source: str


def permissions(rules: Sequence[Rule], user: str, groups: Sequence[str]) -> list[Permission]:
    """What `user` in `groups` (and system:authenticated) may do, one row per granting part of a rule."""
    all_groups = (*groups, AUTHENTICATED)
    rows: list[Permission] = []
    for rule in rules:
        if not subject_matches(rule, user, all_groups):
            continue
        verbs = READ_VERBS if rule.readonly else "*"
        if rule.resource:
            api_group = rule.api_group if rule.api_group else "(core)"
            namespace = rule.namespace if rule.namespace else "(cluster-scope, all-namespaces)"
            rows.append(Permission(verbs, api_group, rule.resource, namespace, "", rule.source))
        if rule.path:
            rows.append(Permission(verbs, "", "", "", rule.path, rule.source))
    return rows


def render_permissions(rows: Sequence[Permission]) -> str:
    header = ("VERBS", "APIGROUP", "RESOURCE", "NAMESPACE", "NON-RESOURCE PATH", "GRANTED BY")
    table = [header, *((r.verbs, r.api_group, r.resource, r.namespace, r.path, r.source) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Change:
    subject: str
    change: str  # "added" or "removed"
    rule: Rule
    note: str  # why it does not change what is allowed, if it does not
    witness: Attributes | None  # a request the rule's side allows and the other does not; None: none exists


def subject_of(rule: Rule) -> str:
    if rule.user in ("*",) or rule.group == "*":
        return "everyone"
    if rule.group == AUTHENTICATED and not rule.user:
        return "every authenticated user"
    parts = []
    if rule.user:
        parts.append(f"user {rule.user}")
    if rule.group:
        parts.append(f"group {rule.group}" if not rule.user else f"in group {rule.group}")
    return " ".join(parts) or "nobody"


def describe(rule: Rule) -> str:
    verbs = READ_VERBS if rule.readonly else "every verb"
    parts = []
    if rule.resource:
        group = rule.api_group or "core"
        namespace = "every namespace" if rule.namespace == "*" else (rule.namespace or "cluster-scope")
        parts.append(f"{verbs} on {rule.resource} ({group} group) in {namespace}")
    if rule.path:
        parts.append(f"{verbs} on path {rule.path}")
    return "; ".join(parts) or "nothing"


def diff(old: Sequence[Rule], new: Sequence[Rule]) -> list[Change]:
    """Every rule only one side has, each with a request that proves it changes what is allowed,
    or the note that the other side allows all of it already (exact: see lint/witness.py)."""
    changes = [
        *_one_side(new, old, "added", "already allowed before by"),
        *_one_side(old, new, "removed", "still allowed by"),
    ]
    changes.sort(key=lambda c: (c.subject, c.change != "added", c.rule.position))
    return changes


def _one_side(rules: Sequence[Rule], other: Sequence[Rule], change: str, covered: str) -> list[Change]:
    other_grants, index, witnesses = {grant(r) for r in other}, RuleIndex(other), Witnesses(other, rules)
    changes: list[Change] = []
    for rule in rules:
        if grant(rule) in other_grants or matches_nobody(rule):
            continue
        proof = witnesses.of(rule)
        note = ""
        if proof is None:
            coverer = index.first_coverer(rule, exclude_same_grant=False)
            note = f"{covered} {coverer.source}" if coverer else f"{covered} several lines together"
        changes.append(Change(subject_of(rule), change, rule, note, proof))
    return changes


def describe_request(a: Attributes) -> str:
    """A request as one line, the resource as kubectl spells it: who, which verb, on what."""
    who = a.user + (f" in group {', '.join(a.groups)}" if a.groups else "")
    if not a.resource_request:
        return f"{who}: {a.verb} path {a.path}"
    resource = (a.resource or "(no resource)") + (f".{a.api_group}" if a.api_group else "")
    where = f"namespace {a.namespace}" if a.namespace else "no namespace"
    return f"{who}: {a.verb} {resource} in {where}"


def render_diff(changes: Sequence[Change]) -> str:
    if not changes:
        return "no change in what the policy grants\n"
    lines: list[str] = []
    subject = None
    for change in changes:
        if change.subject != subject:
            subject = change.subject
            lines.append(f"{subject}:")
        sign = "+" if change.change == "added" else "-"
        note = f"  ({change.note})" if change.note else ""
        lines.append(f"  {sign} {change.rule.source}: {describe(change.rule)}{note}")
        if change.witness is not None:
            lines.append(f"      e.g. {describe_request(change.witness)}")
    return "\n".join(lines) + "\n"
