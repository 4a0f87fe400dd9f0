"""Actana: run AI agents in locked-down sandboxes, with an audit trail you can replay."""

__version__ = "0.1.0"

__all__ = ["__version__"]
