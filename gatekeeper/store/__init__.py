"""gatekeeper.store."""
