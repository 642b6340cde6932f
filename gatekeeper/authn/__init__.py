"""gatekeeper.authn."""
