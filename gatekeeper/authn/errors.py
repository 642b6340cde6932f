"""Why a request is not authenticated: raised by authenticators, turned into a 401 at the edge."""

from __future__ import annotations

from gatekeeper.errors import Refused


class AuthenticationError(Refused):
    """Credentials were presented and rejected (or could not be used).

    The message is for the server log: it says which method failed and why in general terms,
    and never contains a token, a password, a hash or a key. Clients only ever see "Unauthorized".
    """
