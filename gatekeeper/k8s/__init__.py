"""Kubernetes' own vocabulary, shared by every layer: quantities, field reads, object shapes, YAML text."""
