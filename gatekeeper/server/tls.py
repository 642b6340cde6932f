"""TLS for the server: the certificate, and the client CA that verifies optional client certificates."""

from __future__ import annotations

import ssl
from typing import Any

from gatekeeper.config import Settings


def uvicorn_tls_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_cert_file),
        "ssl_keyfile": str(settings.tls_private_key_file),
    }
    if settings.client_ca_file:
        # Optional per connection: a caller without a certificate may still use a token.
        options["ssl_ca_certs"] = str(settings.client_ca_file)
        options["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
    return options
