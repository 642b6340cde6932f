"""Usage evaluators, one per kind of object quota can measure; registry.py picks one per request."""
