"""TLS for the server: the certificate, and the client CA that verifies optional client certificates.

A client certificate is optional per connection (CERT_OPTIONAL): a caller without one may still
use a token or basic auth. A certificate that is presented must verify against the client CA,
or OpenSSL ends the handshake. Python's server context already refuses anything older than
TLS 1.2 and disables compression. The HTTP protocol class (server/protocol.py) hands the verified
certificate to the app, which verifies it again (authn/x509.py) before it names anyone.
"""

from __future__ import annotations

import ssl
from typing import Any

from gatekeeper.config import Settings
from gatekeeper.server.protocol import TLSProtocol


def uvicorn_tls_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for uvicorn.run/Config: certificate, client CA, and the TLS-aware protocol."""
    options: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_cert_file),
        "ssl_keyfile": str(settings.tls_private_key_file),
        "http": TLSProtocol,
    }
    if settings.client_ca_file:
        # Optional per connection: a caller without a certificate may still use a token.
        options["ssl_ca_certs"] = str(settings.client_ca_file)
        options["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
    return options
