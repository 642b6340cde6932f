"""gatekeeper: authentication, ABAC authorization and admission for Kubernetes-style clusters."""

__version__ = "0.1.0"
