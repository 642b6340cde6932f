"""`gatekeeper replay`: what a new ABAC policy would have answered to requests a cluster audited.

Exit status: 0 no grant lost, 1 a grant lost, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from gatekeeper.api.audit_events import DECISION_ANNOTATION, OtherStage, Unmapped, parse_event
from gatekeeper.authz.evaluator import load_evaluator
from gatekeeper.authz.policy import PolicyError, gc_paused
from gatekeeper.authz.replay import Direction, Replay, Seen
from gatekeeper.config import Settings
from gatekeeper.config.files import announce_stdin, input_file, input_or_stdin
from gatekeeper.config.flags import add_flag

MAX_REASONS = 100  # distinct reasons an event was not decided, kept with their first example


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "replay",
        help="decide audited requests (audit.k8s.io/v1 Events) under a new policy; exit 1 if a grant is lost",
    )
    p.add_argument(
        "logs",
        nargs="+",
        type=input_or_stdin,
        metavar="FILE",
        help="kube-apiserver audit log files (JSON lines, or one EventList); - for stdin",
    )
    add_flag(p, Settings, "authorization_policy_file", required=True,
             help="the new ABAC policy the requests are decided under")
    p.add_argument(
        "--baseline-policy-file",
        type=input_file,
        metavar="FILE",
        help=f"the policy to compare with (default: each event's recorded {DECISION_ANNOTATION})",
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    p.set_defaults(run=run)


@dataclass(slots=True)
class Skipped:
    """Events not decided: other stages (expected) and events that name no request (unmapped)."""

    stages: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, tuple[int, str]] = field(default_factory=dict)  # reason -> (count, first source)

    def unmapped(self, reason: str, source: str) -> None:
        if reason not in self.reasons and len(self.reasons) >= MAX_REASONS:
            reason = "other reasons"
        count, first = self.reasons.get(reason, (0, source))
        self.reasons[reason] = (count + 1, first)

    @property
    def unmapped_total(self) -> int:
        return sum(count for count, _ in self.reasons.values())


def run(args: argparse.Namespace) -> int:
    try:
        replay = Replay(
            new=load_evaluator(args.authorization_policy_file).authorize,
            baseline=load_evaluator(args.baseline_policy_file).authorize
            if args.baseline_policy_file
            else None,
        )
        skipped = Skipped()
        with gc_paused():  # the loop makes no cycles; the collector's passes over the caches free nothing
            for path in args.logs:
                _replay_file(replay, skipped, path)
    except PolicyError as exc:
        print(f"gatekeeper replay: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"gatekeeper replay: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    render = _text if args.format == "text" else _json
    sys.stdout.write(render(replay, skipped, args))
    return 1 if replay.totals()[Direction.LOST] else 0


def _replay_file(replay: Replay, skipped: Skipped, path: str) -> None:
    for source, event in _events(path, skipped):
        try:
            request = parse_event(event)
        except OtherStage as stage:
            skipped.stages[stage.args[0]] = skipped.stages.get(stage.args[0], 0) + 1
            continue
        except Unmapped as exc:
            skipped.unmapped(str(exc), source)
            continue
        if replay.baseline is None and request.recorded is None:
            skipped.unmapped(f"no {DECISION_ANNOTATION} annotation (give --baseline-policy-file)", source)
            continue
        seen = Seen(source, request.audit_id, request.request_uri, request.impersonated_by)
        replay.decide(request.attributes, request.recorded, seen)


def _events(path: str, skipped: Skipped) -> Iterator[tuple[str, Any]]:
    """(FILE:LINE, event) for each event: JSON lines streamed, or the items of one EventList."""
    name = "<stdin>" if path == "-" else path
    with _open(path) as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                if number == 1 and line.lstrip().startswith(b"{"):
                    yield from _event_list(name, line + stream.read(), skipped)
                    return
                skipped.unmapped("not valid JSON", f"{name}:{number}")
                continue
            if isinstance(value, dict) and value.get("kind") == "EventList":
                yield from _items(name, value, skipped)
                continue
            yield f"{name}:{number}", value


def _event_list(name: str, data: bytes, skipped: Skipped) -> Iterator[tuple[str, Any]]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        skipped.unmapped(f"not JSON lines and not one JSON document ({exc.msg})", f"{name}:{exc.lineno}")
        return
    if not isinstance(value, dict) or value.get("kind") != "EventList":
        skipped.unmapped("one JSON document that is not an EventList", f"{name}:1")
        return
    yield from _items(name, value, skipped)


def _items(name: str, event_list: dict[str, Any], skipped: Skipped) -> Iterator[tuple[str, Any]]:
    items = event_list.get("items") or []
    if not isinstance(items, list):
        skipped.unmapped("EventList.items: expected a list", name)
        return
    for index, item in enumerate(items):
        yield f"{name}:items[{index}]", item


def _open(path: str) -> IO[bytes]:
    if path == "-":
        announce_stdin("audit events (JSON lines)")
        return sys.stdin.buffer
    return open(path, "rb")


def _text(replay: Replay, skipped: Skipped, args: argparse.Namespace) -> str:
    baseline = args.baseline_policy_file or f"the recorded {DECISION_ANNOTATION}"
    totals = replay.totals()
    lines = [
        f"{replay.decided} requests decided under {args.authorization_policy_file} against {baseline}: "
        f"{replay.unchanged} unchanged, {totals[Direction.LOST]} lose a grant, "
        f"{totals[Direction.GAINED]} gain one",
    ]
    for direction in (Direction.LOST, Direction.GAINED):
        groups = replay.ordered(direction)
        if groups:
            lines.append(f"\ngrants {direction.value} ({_plural(len(groups), 'group')}):")
        for g in groups:
            k, e = g.key, g.example
            where = f" in namespace {k.namespace}" if k.namespace else ""
            by = f" (impersonated by {k.impersonated_by})" if k.impersonated_by else ""
            lines.append(f"  {k.user}{by}: {k.verb} {k.target}{where} - {_plural(g.count, 'request')}")
            lines.append(f"    e.g. {e.seen.source} auditID {e.seen.audit_id} {e.seen.request_uri}")
            lines.append(f"    new policy: {e.new_reason}; baseline: {e.baseline_reason}")
    if skipped.stages:
        stages = ", ".join(f"{stage} {count}" for stage, count in sorted(skipped.stages.items()))
        lines.append(
            f"\nevents of other stages, not decided (each request is decided at ResponseComplete): {stages}"
        )
    if skipped.reasons:
        lines.append(f"\nevents not decided ({skipped.unmapped_total}):")
        for reason, (count, first) in sorted(skipped.reasons.items(), key=lambda kv: -kv[1][0]):
            lines.append(f"  {count} x {reason} (first at {first})")
    return "\n".join(lines) + "\n"


def _plural(count: int, noun: str) -> str:
    return f"1 {noun}" if count == 1 else f"{count} {noun}s"


def _json(replay: Replay, skipped: Skipped, args: argparse.Namespace) -> str:
    totals = replay.totals()
    doc = {
        "policy": str(args.authorization_policy_file),
        "baseline": str(args.baseline_policy_file) if args.baseline_policy_file else "recorded",
        "decided": replay.decided,
        "unchanged": replay.unchanged,
        "lost": totals[Direction.LOST],
        "gained": totals[Direction.GAINED],
        "changes": [
            {
                "direction": g.key.direction.value,
                "user": g.key.user,
                "impersonatedBy": g.key.impersonated_by,
                "verb": g.key.verb,
                "target": g.key.target,
                "namespace": g.key.namespace,
                "count": g.count,
                "example": {
                    "event": g.example.seen.source,
                    "auditID": g.example.seen.audit_id,
                    "requestURI": g.example.seen.request_uri,
                    "newReason": g.example.new_reason,
                    "baselineReason": g.example.baseline_reason,
                },
            }
            for direction in (Direction.LOST, Direction.GAINED)
            for g in replay.ordered(direction)
        ],
        "otherStages": skipped.stages,
        "notDecided": [
            {"reason": reason, "count": count, "first": first}
            for reason, (count, first) in skipped.reasons.items()
        ],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
