"""gatekeeper.lint."""
