"""Who is calling gatekeeper itself: authenticate, then authorize the endpoint by ABAC.

Every protected route depends on `require_caller`:

1. authentication: the connection's client certificate (x509), then `Authorization: Bearer`
   (token file), then `Authorization: Basic` (basic-auth file); see gatekeeper/authn/union.py.
   Nobody authenticated: 401 with WWW-Authenticate, or system:anonymous with --anonymous-auth.
2. authorization: the ABAC policy decides a non-resource request for the caller, with path =
   the endpoint's path (never the query string: kube-apiserver calls /authenticate?timeout=30s)
   and verb = the HTTP method in lower case. No rule allows it: 403.

Refusals are Kubernetes Status objects that say only "Unauthorized" or which user may not call
which path; the reason a credential was rejected goes to the server log and the audit log,
without the credential.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request

from gatekeeper.authn.union import Unauthenticated
from gatekeeper.authn.user import UserInfo
from gatekeeper.authz.attributes import Attributes
from gatekeeper.server import observe
from gatekeeper.server.protocol import peer_certificates
from gatekeeper.server.responses import HTTPError
from gatekeeper.server.runtime import Runtime

log = logging.getLogger("gatekeeper.caller")


async def authenticate_caller(request: Request) -> UserInfo:
    """The authenticated caller, or HTTPError 401."""
    runtime: Runtime = request.app.state.runtime
    authenticator = runtime.authenticator()
    authorization = request.headers.get("authorization")
    peer = peer_certificates(request.scope)
    try:
        if authenticator.may_block(authorization):
            return await asyncio.to_thread(authenticator.authenticate, peer, authorization)
        return authenticator.authenticate(peer, authorization)
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
