"""Who is calling gatekeeper itself: authenticate, then check the endpoint's own list of callers.

The router (server/routing.py) calls `require_caller` for every route whose table entry names
callers (every route but /healthz and /readyz), with that route's list:

1. authentication: the connection's client certificate (x509), then `Authorization: Bearer`
   (token file), then `Authorization: Basic` (basic-auth file); see gatekeeper/authn/union.py.
   Nobody authenticated: 401 with WWW-Authenticate, or system:anonymous with --anonymous-auth.
   A password that needs a hash check runs on the runtime's bounded pool (authn/hashing.py);
   with --max-password-hashes-inflight checks already in flight it is refused at once (HashingBusy,
   a Busy: 429 with Retry-After, as kube-apiserver's max-in-flight filter answers), and nothing
   is hashed.
2. authorization: the endpoint's identity list names the caller, by user or by one of its
   groups: --webhook-callers for the webhooks, --metrics-readers for /metrics and /quota, either
   for /openapi.json. Not named: 403. The ABAC policy is not consulted: it is the cluster's
   policy, about the cluster's requests, and a wide grant there (nonResourcePath "*") must not
   let anyone post forged reviews to gatekeeper.

Refusals are Kubernetes Status objects that say only "Unauthorized" or which user may not call
which path; the reason a credential was rejected goes to the server log and the audit log,
without the credential.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from starlette.requests import Request

from gatekeeper.authn.hashing import HashingBusy
from gatekeeper.authn.union import Unauthenticated
from gatekeeper.authn.user import UserInfo
from gatekeeper.authz.evaluator import Evaluator
from gatekeeper.config import Settings
from gatekeeper.server import observe
from gatekeeper.server.protocol import peer_certificates
from gatekeeper.server.responses import HTTPError
from gatekeeper.server.runtime import Runtime

log = logging.getLogger("gatekeeper.caller")

BUSY_LOG_SECONDS = 10.0  # a flood is logged once per this, with a count, not once per request


class BusyLog:
    """Says that password checks are at capacity, at most once per `every` seconds."""

    def __init__(self, every: float = BUSY_LOG_SECONDS) -> None:
        self.every = every
        self._next = 0.0
        self._refused = 0

    def refused(self, limit: int) -> None:
        self._refused += 1
        now = time.monotonic()
        if now < self._next:
            return
        log.warning(
            "429: %d password checks in flight (--max-password-hashes-inflight); refused %d basic-auth "
            "attempts without hashing since the last such line", limit, self._refused,
        )
        self._next, self._refused = now + self.every, 0


BUSY = BusyLog()


async def authenticate_caller(request: Request) -> UserInfo:
    """The authenticated caller, or HTTPError 401 (HashingBusy when password checks are at capacity)."""
    runtime: Runtime = request.app.state.runtime
    authenticator = runtime.authenticator()
    authorization = request.headers.get("authorization")
    peer = peer_certificates(request.scope)
    try:
        if authenticator.may_block(authorization, peer):
            return await runtime.password_hashes.run(authenticator.authenticate, peer, authorization)
        return authenticator.authenticate(peer, authorization)
    except HashingBusy:
        BUSY.refused(runtime.password_hashes.limit)
        raise
    except Unauthenticated as exc:
        client = request.client.host if request.client else "?"
        log.info("401 %s %s from %s: %s", request.method, request.scope["path"], client, exc)
        observe.caller_refused(request, None, str(exc))
        raise HTTPError(
            401, "Unauthorized", "Unauthorized", {"WWW-Authenticate": authenticator.challenges()}
        ) from None


class Access(enum.Enum):
    """Who may call a route (its entry in the route table)."""

    ANYONE = "anyone"  # no authentication: /healthz, /readyz
    WEBHOOK_CALLERS = "--webhook-callers"
    METRICS_READERS = "--metrics-readers"
    EITHER = "--webhook-callers or --metrics-readers"


@dataclass(frozen=True, slots=True)
class Callers:
    """The identities one endpoint accepts, and the flags that name them (for the refusal's reason)."""

    users: frozenset[str]
    groups: frozenset[str]
    flags: str

    @classmethod
    def of(cls, flags: str, *entries: Iterable[str]) -> Callers:
        named = [entry for group in entries for entry in group]
        return cls(
            frozenset(e.removeprefix("user:") for e in named if e.startswith("user:")),
            frozenset(e.removeprefix("group:") for e in named if e.startswith("group:")),
            flags,
        )

    def admit(self, caller: UserInfo) -> bool:
        return caller.name in self.users or not self.groups.isdisjoint(caller.groups)

    def names(self, rule_user: str, rule_group: str) -> bool:
        return rule_user in self.users or rule_group in self.groups


def callers_by_access(settings: Settings) -> Mapping[Access, Callers]:
    """The list of each kind of protected route; Access.ANYONE has none (nobody is authenticated)."""
    webhooks, readers = settings.webhook_callers, settings.metrics_readers
    return {
        Access.WEBHOOK_CALLERS: Callers.of(Access.WEBHOOK_CALLERS.value, webhooks),
        Access.METRICS_READERS: Callers.of(Access.METRICS_READERS.value, readers),
        Access.EITHER: Callers.of(Access.EITHER.value, webhooks, readers),
    }


def authorize_caller(request: Request, caller: UserInfo, callers: Callers) -> None:
    """HTTPError 403 unless the route's caller list names `caller` (by user or group)."""
    path: str = request.scope["path"]
    if callers.admit(caller):
        return
    verb = request.method.lower()
    reason = f"not named by {callers.flags}"
    log.info("403 %s %s for user %r: %s", request.method, path, caller.name, reason)
    observe.caller_refused(request, caller, reason)
    raise HTTPError(403, "Forbidden", f'forbidden: User "{caller.name}" cannot {verb} path "{path}"')


def warn_about_policy_grants(policy: Evaluator, callers: Mapping[str, Callers]) -> None:
    """Once at start: ABAC lines that name one of gatekeeper's own paths for someone its list does
    not name. Those lines used to let that caller in; they no longer do."""
    for rule in policy.policy.rules:
        listed = callers.get(rule.path)
        if listed is None or "*" in (rule.user, rule.group) or listed.names(rule.user, rule.group):
            continue  # lists have no wildcard: a "*" line is the cluster's, not a caller's
        who = f"user {rule.user!r}" if rule.user else f"group {rule.group!r}"
        entry = f"user:{rule.user}" if rule.user else f"group:{rule.group}"
        log.warning("%s grants %s the path %s, but gatekeeper's own endpoints no longer follow the "
                    "ABAC policy: add %s to %s to keep letting it call", rule.source, who, rule.path,
                    entry, listed.flags)


async def require_caller(request: Request, callers: Callers) -> UserInfo:
    """The authenticated caller that `callers` names, also left on request.state.caller."""
    caller = await authenticate_caller(request)
    authorize_caller(request, caller, callers)
    request.state.caller = caller
    return caller
