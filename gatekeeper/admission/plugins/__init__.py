"""gatekeeper.admission.plugins."""
