"""Handling of files uploaded by users: skill bundles and the archives they arrive in."""
