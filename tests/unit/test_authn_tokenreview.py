"""TokenReview: the wire format in both versions, audiences as kube-apiserver handles them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatekeeper.api.authentication import parse_token_review, token_review_response
from gatekeeper.authn.tokenfile import TokenFile, load_token_file
from gatekeeper.authn.tokenreview import review_token
from gatekeeper.k8s.fields import InvalidObject


@pytest.fixture
def tokens(tmp_path: Path) -> TokenFile:
    path = tmp_path / "tokens.csv"
    path.write_text('tok-alice,alice,uid-1,"dev,ops"\n')
    return load_token_file(path)


def review(
    version: str = "v1", token: str = "tok-alice", audiences: list[str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    return {"apiVersion": f"authentication.k8s.io/{version}", "kind": "TokenReview", "spec": spec}


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_answer_in_the_version_asked_without_the_token(tokens: TokenFile, version: str) -> None:
    doc = review(version)
    got_version, token, audiences = parse_token_review(doc)
    assert (got_version, token, audiences) == (version, "tok-alice", ())
    answer = token_review_response(doc, version, review_token(tokens, token, audiences))
    assert answer == {
        "apiVersion": f"authentication.k8s.io/{version}",
        "kind": "TokenReview",
        "metadata": {},
        "spec": {},
        "status": {
            "authenticated": True,
            "user": {"username": "alice", "uid": "uid-1", "groups": ["dev", "ops", "system:authenticated"]},
        },
    }
    assert "tok-alice" not in str(answer)


def test_unknown_token(tokens: TokenFile) -> None:
    doc = review(token="nope")
    answer = token_review_response(doc, "v1", review_token(tokens, "nope"))
    assert answer["status"] == {"authenticated": False}


def test_no_token_file_or_empty_token_is_not_authenticated(tokens: TokenFile) -> None:
    assert review_token(None, "tok-alice").user is None
    assert review_token(tokens, "").user is None


def test_without_api_audiences_the_api_server_checks_its_own(tokens: TokenFile) -> None:
    result = review_token(tokens, "tok-alice", ["https://kubernetes.default.svc"])
    assert result.user is not None and result.audiences == ()
    answer = token_review_response(review(audiences=["https://kubernetes.default.svc"]), "v1", result)
    assert "audiences" not in answer["status"]
    assert answer["spec"] == {"audiences": ["https://kubernetes.default.svc"]}


def test_with_api_audiences_the_intersection_or_nothing(tokens: TokenFile) -> None:
    api = ["api", "other"]
    both = review_token(tokens, "tok-alice", ["x", "api"], api)
    assert both.user is not None and both.audiences == ("api",)
    assert review_token(tokens, "tok-alice", ["x"], api).user is None
    implicit = review_token(tokens, "tok-alice", [], api)  # none asked: the implicit audiences
    assert implicit.user is not None and implicit.audiences == ("api", "other")
    answer = token_review_response(review(audiences=["x", "api"]), "v1", both)
    assert answer["status"]["audiences"] == ["api"]


@pytest.mark.parametrize(
    "doc",
    [
        {"apiVersion": "authentication.k8s.io/v2", "kind": "TokenReview", "spec": {}},
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {}},
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"},
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": 5}},
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"audiences": "x"}},
        [],
    ],
)
def test_invalid_reviews(doc: Any) -> None:
    with pytest.raises(InvalidObject):
        parse_token_review(doc)
