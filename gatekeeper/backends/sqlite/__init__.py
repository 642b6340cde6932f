"""The embedded default: objects and quota usage in one SQLite file, shared by the workers of one host."""
