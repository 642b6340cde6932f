"""The one root of gatekeeper's errors, and what each branch means to whoever meets it.

Every error gatekeeper raises on purpose is a GatekeeperError, and its branch says how it is
answered, wherever it is met:

    GatekeeperError
     +-- InvalidInput     what a caller sent is malformed: an HTTP 400 naming the field path, a
     |                    CLI usage error (exit 2); also a ValueError
     +-- InvalidFile      a file gatekeeper loads is refused: start-up stops, a reload keeps the
     |                    last good version and shows the error on /readyz; also a ValueError
     +-- Refused          the answer is no (a plugin's denial, failed authentication): a decision,
     |                    answered as Kubernetes answers it, never logged as a failure
     +-- Unavailable      something gatekeeper depends on cannot answer now (a store, etcd, the API
     |    |               server): 503, so the webhook's failurePolicy decides
     |    +-- Busy        a bounded resource is full (the password-hashing pool): 429, Retry-After
     +-- Internal         a bug of gatekeeper's own (an invariant broken): a logged 500

Anything else that escapes (TypeError, KeyError, ...) is also a bug and answered as Internal is.
"""

from __future__ import annotations


class GatekeeperError(Exception):
    """The root: `except GatekeeperError` catches every error gatekeeper raises on purpose."""


class InvalidInput(GatekeeperError, ValueError):
    """A request, object or argument that is malformed; the message names where."""


class InvalidFile(GatekeeperError, ValueError):
    """A policy, credential, manifest, kubeconfig or settings file that cannot be used."""


class Refused(GatekeeperError):
    """A decision against the request, carried as an exception to its answer."""


class Unavailable(GatekeeperError):
    """A dependency cannot answer now; the caller may retry (503)."""


class Busy(Unavailable):
    """A bounded pool is full; nothing was done; try again shortly (429)."""


class Internal(GatekeeperError):
    """An invariant of gatekeeper's own is broken: a bug, never the caller's fault."""
