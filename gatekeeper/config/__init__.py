"""The settings model and the command-line flags it declares (settings.py, built into argparse by
flags.py), and the argparse types that check input files as they are parsed (files.py)."""

from gatekeeper.config.settings import Settings

__all__ = ["Settings"]
