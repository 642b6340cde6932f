"""gatekeeper.admission."""
