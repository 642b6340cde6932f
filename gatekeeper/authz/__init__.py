"""gatekeeper.authz."""
