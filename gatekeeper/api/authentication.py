"""authentication.k8s.io TokenReview (v1, v1beta1): parse a review, write the answer.

The answer is in the version asked for. It never carries the token back: the spec of the
response keeps only the audiences.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.authn.tokenreview import TokenReviewResult
from gatekeeper.k8s import fields

GROUP = "authentication.k8s.io"
VERSIONS = ("v1", "v1beta1")
KIND = "TokenReview"


def parse_token_review(doc: Any) -> tuple[str, str, tuple[str, ...]]:
    """(version, token, audiences) of a TokenReview."""
    version = fields.type_meta(doc, GROUP, VERSIONS, KIND)
    spec = fields.obj(doc, "spec", "spec", required=True)
    token = fields.string(spec, "token", "spec.token")
    audiences = fields.strings(spec, "audiences", "spec.audiences")
    return version, token, audiences


def token_review_response(
    doc: dict[str, Any], version: str, result: TokenReviewResult, error: str = ""
) -> dict[str, Any]:
    status: dict[str, Any] = {"authenticated": result.user is not None}
    if result.user is not None:
        user: dict[str, Any] = {"username": result.user.name}
        if result.user.uid:
            user["uid"] = result.user.uid
        if result.user.groups:
            user["groups"] = list(result.user.groups)
        if result.user.extra:
            user["extra"] = {k: list(v) for k, v in result.user.extra.items()}
        status["user"] = user
        if result.audiences:
            status["audiences"] = list(result.audiences)
    if error:
        status["error"] = error
    spec = doc.get("spec")
    audiences = spec.get("audiences") if isinstance(spec, dict) else None
    response_spec = {"audiences": audiences} if audiences else {}
    metadata = doc.get("metadata")
    return {
        "apiVersion": f"{GROUP}/{version}",
        "kind": KIND,
        "metadata": metadata if isinstance(metadata, dict) else {},
        "spec": response_spec,
        "status": status,
    }
