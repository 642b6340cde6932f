"""gatekeeper.commands."""
