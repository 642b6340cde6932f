"""gatekeeper.api."""
