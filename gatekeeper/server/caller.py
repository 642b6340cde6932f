"""Who is calling gatekeeper itself: authenticate, then authorize the endpoint by ABAC."""

from __future__ import annotations

from starlette.requests import Request

from gatekeeper.authn.user import UserInfo


async def require_caller(request: Request) -> UserInfo:
    """Placeholder until caller authentication lands (issue 3): every caller is anonymous."""
    return UserInfo(name="system:anonymous", groups=("system:unauthenticated",))
