"""What each request decided, for the metrics and the audit log: one call per handler.

A handler calls `authorization`, `authentication` or `admission` once with its decision; that
names the request's decision label and queues an audit line. `authorization` also takes the
shadow policy's decision, if there is one: it is only counted and audited, never answered. A
caller refused before any handler runs (401, 403) is audited through `caller_refused`. `Observe`
(pure ASGI middleware) times every request and counts it when the response starts, under the
handler's decision or, for a refusal (400/401/403/413...), under the HTTP reason. Nothing here
blocks the event loop.

The audit entry holds attributes only: never a token, a password, an object body or a user's
`extra` values, any of which may carry a secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatekeeper.admission.outcome import Outcome
from gatekeeper.admission.request import AdmissionRequest
from gatekeeper.authn.tokenreview import TokenReviewResult
from gatekeeper.authn.user import UserInfo
from gatekeeper.authz.attributes import Attributes, Decision
from gatekeeper.server import metrics

log = logging.getLogger("gatekeeper.audit")

DECISION_KEY = "gatekeeper.decision"
# How the shadow policy's decision compares with the answer (gatekeeper_shadow_decisions_total).
SHADOW_AGREE, SHADOW_ALLOWS, SHADOW_DENIES = "agree", "shadow_allows", "shadow_denies"
SHADOW_RESULTS = (SHADOW_AGREE, SHADOW_ALLOWS, SHADOW_DENIES)
OTHER = "other"  # the endpoint label of every path that is no route


def authorization(
    request: Request, attributes: Attributes, decision: Decision,
    shadow: Decision | None = None, shadow_sha256: str = "",
) -> None:
    """`shadow`: the shadow policy's decision on the same request (policy `shadow_sha256`), counted
    by how it compares, and audited with its reason next to the answer's when they disagree."""
    disagreement = None if shadow is None else _shadowed(decision, shadow, shadow_sha256)
    _decided(request, _authz_label(decision), lambda: {
        "user": attributes.user,
        "groups": list(attributes.groups),
        "attributes": _authz_attributes(attributes),
        "reason": decision.reason,
        **({"shadow": disagreement} if disagreement is not None else {}),
    })


def shadow_result(answered: Decision, shadow: Decision) -> str:
    """Whether the shadow policy would have answered the same. Both decide with the same
    --authorization-deny-unmatched, so only `allowed` can differ; which line allowed does not count."""
    if answered.allowed == shadow.allowed:
        return SHADOW_AGREE
    return SHADOW_ALLOWS if shadow.allowed else SHADOW_DENIES


def _shadowed(answered: Decision, shadow: Decision, sha256: str) -> dict[str, str] | None:
    result = shadow_result(answered, shadow)
    metrics.record_shadow(result)
    if result == SHADOW_AGREE:
        return None
    return {"result": result, "decision": _authz_label(shadow), "reason": shadow.reason, "sha256": sha256}


def _authz_label(decision: Decision) -> str:
    return "allowed" if decision.allowed else "denied" if decision.denied else "no_opinion"


def authentication(request: Request, result: TokenReviewResult) -> None:
    user = result.user
    label = "authenticated" if user is not None else "unauthenticated"
    _decided(request, label, lambda: {
        "user": user.name if user else None,
        "groups": list(user.groups) if user else [],
        "attributes": {"audiences": list(result.audiences)},
        "reason": "token file" if user else "token not recognised",
    })


def admission(request: Request, review: AdmissionRequest, outcome: Outcome) -> None:
    label = "allowed" if outcome.allowed else "denied"
    if outcome.allowed and outcome.patch:
        label = "patched"
    _decided(request, label, lambda: {
        "user": review.user.name,
        "groups": list(review.user.groups),
        "attributes": _admission_attributes(review),
        **_admission_reason(outcome),
    })


class RefusalBudget:
    """How many refused callers a process audits per second. Anyone who can reach the port can be
    refused, as fast as they can send; unbounded, that would rotate real decisions out of the
    audit log. The entry after a full second says how many were left out (`suppressed`), and
    the request metrics count every refusal."""

    def __init__(self, per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self._clock = clock
        self._second = -1
        self._used = 0
        self._suppressed = 0

    def take(self) -> int | None:
        """None: leave this one out. Otherwise audit it, with the number left out before it."""
        second = int(self._clock())
        if second != self._second:
            self._second, self._used = second, 0
        if self._used >= self.per_second:
            self._suppressed += 1
            if self._suppressed == 1:  # said here too: a flood may be the last thing that happens
                log.warning("more than %d refused callers this second: the rest are counted, "
                            "not audited, until the next audited refusal", self.per_second)
            return None
        self._used += 1
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed


REFUSALS = RefusalBudget(per_second=20)


def caller_refused(request: Request, caller: UserInfo | None, reason: str) -> None:
    """Gatekeeper turned its own caller away: no identity (401, caller None) or the policy does not
    let `caller` use the endpoint (403). Audited like a decision, with where the call came from."""
    if request.app.state.audit is None:
        return
    suppressed = REFUSALS.take()
    if suppressed is None:
        return
    label = "forbidden" if caller is not None else "unauthorized"
    _audit(request, caller, label, lambda: {
        "sourceIP": request.client.host if request.client else None,
        "user": None,
        "groups": [],
        "attributes": {"verb": request.method.lower(), "path": request.scope["path"]},
        "reason": reason,
        **({"suppressed": suppressed} if suppressed else {}),
    })


def _decided(request: Request, label: str, details: Callable[[], dict[str, Any]]) -> None:
    request.scope[DECISION_KEY] = label
    _audit(request, getattr(request.state, "caller", None), label, details)


def _audit(
    request: Request, caller: UserInfo | None, label: str, details: Callable[[], dict[str, Any]]
) -> None:
    audit = request.app.state.audit
    if audit is None:
        return
    audit.write({
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "endpoint": request.scope["path"],
        "caller": {"user": caller.name, "groups": list(caller.groups)} if caller else None,
        **details(),
        "decision": label,
    })


def _authz_attributes(a: Attributes) -> dict[str, Any]:
    if not a.resource_request:
        return {"verb": a.verb, "path": a.path}
    found = {"verb": a.verb, "namespace": a.namespace, "apiGroup": a.api_group, "resource": a.resource,
             "subresource": a.subresource, "name": a.name}
    return {k: v for k, v in found.items() if v or k in ("verb", "resource")}


def _admission_attributes(r: AdmissionRequest) -> dict[str, Any]:
    return {
        "uid": r.uid,
        "operation": r.operation,
        "kind": "/".join(p for p in (r.kind.group, r.kind.version, r.kind.kind) if p),
        "resource": r.resource.resource,
        **({"subresource": r.sub_resource} if r.sub_resource else {}),
        "namespace": r.namespace,
        "name": r.name,
        "dryRun": r.dry_run,
    }


def _admission_reason(outcome: Outcome) -> dict[str, Any]:
    if outcome.denied is None:
        return {"reason": f"{len(outcome.patch)} patch operations" if outcome.patch else "admitted"}
    return {"plugin": outcome.plugin or None, "reason": outcome.denied.message, "code": outcome.denied.code}


class Observe:
    """Times and counts every HTTP request (pure ASGI: no per-request objects beyond a closure).
    `endpoints`: the paths counted under their own name; any other is counted as "other"."""

    def __init__(self, app: ASGIApp, endpoints: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        endpoint = scope["path"] if scope["path"] in self.endpoints else OTHER

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                _count(scope, endpoint, message["status"], time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except Exception:
            _count(scope, endpoint, 500, time.perf_counter() - started)
            raise


def _count(scope: Scope, endpoint: str, status: int, seconds: float) -> None:
    label = scope.get(DECISION_KEY) if status < 400 else None
    metrics.record(endpoint, label or _status_label(status), seconds)


def _status_label(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_")  # "bad_request", "unauthorized"
    except ValueError:
        return str(status)
