"""Secrets at rest, API keys and the security audit trail."""
