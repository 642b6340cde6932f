"""Deciding a TokenReview: the token file, and audiences as kube-apiserver handles them.

Static tokens are not bound to an audience. kube-apiserver treats such tokens as valid for its
own "implicit" audiences (--api-audiences) and answers a TokenReview with the intersection of
those and the audiences asked for (nothing in common: not authenticated). gatekeeper does the
same when it is given --api-audiences. Without it, gatekeeper does not know the API server's
audiences, so it answers with no status.audiences, which the TokenReview API defines as "valid
for the audience of the Kubernetes API server"; kube-apiserver's webhook authenticator then
checks the audiences of the request against its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gatekeeper.authn.tokenfile import TokenFile
from gatekeeper.authn.union import with_authenticated_group
from gatekeeper.authn.user import UserInfo


@dataclass(frozen=True, slots=True)
class TokenReviewResult:
    user: UserInfo | None  # None: not authenticated
    audiences: tuple[str, ...] = ()


def review_token(
    tokens: TokenFile | None,
    token: str,
    audiences: Sequence[str] = (),
    api_audiences: Sequence[str] = (),
) -> TokenReviewResult:
    if tokens is None or not token:
        return TokenReviewResult(None)
    wanted = tuple(audiences) or tuple(api_audiences)
    granted: tuple[str, ...] = ()
    if wanted and api_audiences:
        granted = tuple(a for a in wanted if a in api_audiences)
        if not granted:
            return TokenReviewResult(None)  # the token is not valid for any audience asked for
    user = tokens.authenticate_token(token)
    if user is None:
        return TokenReviewResult(None)
    return TokenReviewResult(with_authenticated_group(user), granted)
