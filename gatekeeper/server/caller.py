"""Who is calling gatekeeper itself: authenticate, then authorize the endpoint by ABAC.

Every protected route depends on `require_caller`:

1. authentication: the connection's client certificate (x509), then `Authorization: Bearer`
   (token file), then `Authorization: Basic` (basic-auth file); see gatekeeper/authn/union.py.
   Nobody authenticated: 401 with WWW-Authenticate, or system:anonymous with --anonymous-auth.
   A password that needs a hash check runs on the runtime's bounded pool (authn/hashing.py);
   with --max-password-hashes-inflight checks already in flight it is refused at once: 429 with
   Retry-After, as kube-apiserver's max-in-flight filter answers, and nothing is hashed.
2. authorization: the ABAC policy decides a non-resource request for the caller, with path =
   the endpoint's path (never the query string: kube-apiserver calls /authenticate?timeout=30s)
   and verb = the HTTP method in lower case. No rule allows it: 403.

Refusals are Kubernetes Status objects that say only "Unauthorized" or which user may not call
which path; the reason a credential was rejected goes to the server log and the audit log,
without the credential.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request

from gatekeeper.authn.hashing import HashingBusy
from gatekeeper.authn.union import Unauthenticated
from gatekeeper.authn.user import UserInfo
from gatekeeper.authz.attributes import Attributes
from gatekeeper.server import observe
from gatekeeper.server.protocol import peer_certificates
from gatekeeper.server.responses import HTTPError, JSONResponse, status_body
from gatekeeper.server.runtime import Runtime

log = logging.getLogger("gatekeeper.caller")

RETRY_AFTER_SECONDS = 1  # what kube-apiserver's max-in-flight filter says
BUSY_LOG_SECONDS = 10.0  # a flood is logged once per this, with a count, not once per request


class TooManyRequests(HTTPError):
    """apierrors.NewTooManyRequests: a Status with details.retryAfterSeconds, and Retry-After."""

    def __init__(self) -> None:
        super().__init__(
            429, "TooManyRequests", "Too many requests, please try again later.",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    def response(self) -> JSONResponse:
        body = status_body(self.code, self.reason, self.message)
        body["details"] = {"retryAfterSeconds": RETRY_AFTER_SECONDS}
        return JSONResponse(body, self.code, self.headers)


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
    """The authenticated caller, or HTTPError 401 (429 when password checks are at capacity)."""
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
        raise TooManyRequests() from None
    except Unauthenticated as exc:
        client = request.client.host if request.client else "?"
        log.info("401 %s %s from %s: %s", request.method, request.scope["path"], client, exc)
        observe.caller_refused(request, None, str(exc))
        raise HTTPError(
            401, "Unauthorized", "Unauthorized", {"WWW-Authenticate": authenticator.challenges()}
        ) from None


def authorize_caller(request: Request, caller: UserInfo) -> None:
    """HTTPError 403 unless the policy allows `caller` this endpoint as a non-resource request."""
    runtime: Runtime = request.app.state.runtime
    path: str = request.scope["path"]
    verb = request.method.lower()
    decision = runtime.policy.current.authorize(
        Attributes(user=caller.name, groups=caller.groups, verb=verb, resource_request=False, path=path)
    )
    if decision.allowed:
        return
    log.info("403 %s %s for user %r: %s", request.method, path, caller.name, decision.reason)
    observe.caller_refused(request, caller, decision.reason)
    raise HTTPError(403, "Forbidden", f'forbidden: User "{caller.name}" cannot {verb} path "{path}"')


async def require_caller(request: Request) -> UserInfo:
    """FastAPI dependency: the authenticated, authorized caller (also left on request.state.caller)."""
    caller = await authenticate_caller(request)
    authorize_caller(request, caller)
    request.state.caller = caller
    return caller
