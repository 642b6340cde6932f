"""gatekeeper.server."""
