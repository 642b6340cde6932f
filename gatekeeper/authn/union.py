"""One request, every configured method in turn: x509, then bearer token, then basic auth.

As kube-apiserver's union authenticator: the first method that recognises the credentials
wins; every authenticated user gets the group system:authenticated. Credentials that were
presented and rejected (an unknown token, a wrong password, a certificate that does not verify)
make the request unauthenticated even with anonymous auth on (Kubernetes' FailOnError union);
anonymous auth only covers a request that presented nothing. Unlike kube-apiserver, an
Authorization header that is present but not understood is an error too, not "no credentials".
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from gatekeeper.authn.basicauth import BasicAuthFile
from gatekeeper.authn.errors import AuthenticationError
from gatekeeper.authn.tokenfile import TokenFile
from gatekeeper.authn.user import ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, UserInfo
from gatekeeper.authn.x509 import PeerCertificates, X509Authenticator

ANONYMOUS_USER = UserInfo(name=ANONYMOUS, groups=(UNAUTHENTICATED,))
NO_CERTIFICATE = PeerCertificates(())


class Unauthenticated(AuthenticationError):
    """No method authenticated the request; `reason` is for the server log only."""


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class BearerCredentials:
    token: str


def parse_authorization(header: str | None) -> BasicCredentials | BearerCredentials | None:
    """The credentials of an Authorization header; None if there is none; raises if malformed."""
    if header is None:
        return None
    value = header.strip()
    if not value:
        return None
    scheme, _, rest = value.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return _bearer(rest)
    rest = rest.strip(" ")
    if scheme == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise AuthenticationError("basic: malformed Authorization header") from None
        username, colon, password = decoded.partition(":")
        if not colon:
            raise AuthenticationError("basic: malformed Authorization header")
        return BasicCredentials(username, password)
    raise AuthenticationError("unsupported Authorization scheme")


def _bearer(rest: str) -> BearerCredentials:
    """As k8s.io/apiserver's bearertoken: the token is what follows "Bearer " up to the next space,
    so "Bearer  token" (two spaces) has an empty token, which is no token. kube-apiserver ignores
    anything after the token; here it is refused, like every header that is not understood."""
    token, space, _ = rest.partition(" ")
    if not token or space:
        raise AuthenticationError("bearer: malformed Authorization header")
    return BearerCredentials(token)


def with_authenticated_group(user: UserInfo) -> UserInfo:
    """Kubernetes' AuthenticatedGroupAdder."""
    if AUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, AUTHENTICATED), user.extra)


@dataclass(frozen=True, slots=True)
class RequestAuthenticator:
    """The methods in force for one request (files are swapped whole on reload)."""

    x509: X509Authenticator | None = None
    tokens: TokenFile | None = None
    basic: BasicAuthFile | None = None
    anonymous: bool = False

    def may_block(self, authorization: str | None, peer: PeerCertificates = NO_CERTIFICATE) -> bool:
        """True if authenticate() may spend a password hash's time (run it on the hash pool then)."""
        if self.basic is None or not self.basic.has_hashes or authorization is None:
            return False
        if self._certificate_user(peer) is not None:
            return False  # x509 comes first: the password is never looked at
        try:
            credentials = parse_authorization(authorization)
        except AuthenticationError:
            return False
        if not isinstance(credentials, BasicCredentials):
            return False
        return not self.basic.is_cached(credentials.username, credentials.password)

    def _certificate_user(self, peer: PeerCertificates) -> UserInfo | None:
        """The certificate's user, if it authenticates one (the outcome is cached on `peer`)."""
        if self.x509 is None or not peer:
            return None
        try:
            return self.x509.authenticate(peer)
        except AuthenticationError:
            return None

    def authenticate(
        self, peer: PeerCertificates = NO_CERTIFICATE, authorization: str | None = None
    ) -> UserInfo:
        """The caller; raises Unauthenticated (with a log-safe reason) when nobody is authenticated."""
        errors: list[str] = []
        if self.x509 is not None and peer:
            try:
                user = self.x509.authenticate(peer)
            except AuthenticationError as exc:
                errors.append(str(exc))
            else:
                if user is not None:
                    return with_authenticated_group(user)
        try:
            credentials = parse_authorization(authorization)
        except AuthenticationError as exc:
            errors.append(str(exc))
            credentials = None
        if isinstance(credentials, BearerCredentials):
            if self.tokens is None:
                errors.append("bearer: token authentication is not enabled")
            else:
                user = self.tokens.authenticate_token(credentials.token)
                if user is not None:
                    return with_authenticated_group(user)
                errors.append("bearer: invalid bearer token")
        elif isinstance(credentials, BasicCredentials):
            if self.basic is None:
                errors.append("basic: basic authentication is not enabled")
            else:
                user = self.basic.authenticate_password(credentials.username, credentials.password)
                if user is not None:
                    return with_authenticated_group(user)
                errors.append("basic: invalid username or password")
        if not errors and self.anonymous:
            return ANONYMOUS_USER
        raise Unauthenticated("; ".join(errors) or "no credentials")

    def challenges(self) -> str:
        """The WWW-Authenticate value of a 401 (RFC 7235 asks for at least one challenge)."""
        offers = ['Bearer realm="gatekeeper"']
        if self.basic is not None:
            offers.append('Basic realm="gatekeeper", charset="UTF-8"')
        return ", ".join(offers)
