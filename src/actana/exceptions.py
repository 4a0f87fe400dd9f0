"""One exception hierarchy for the whole control plane.

`UsageError` is the caller's mistake and maps to a 4xx response; `RunError` is something that
failed while doing the work and maps to a 5xx (or, later, to a failed run). `ConfigError` stops
the process at start-up. The API turns every `ActanaError` into JSON in exactly one handler
(`actana.api.errors`), so routes raise and never build error responses themselves.
"""

from __future__ import annotations

from typing import Any


class ActanaError(Exception):
    """Something went wrong in Actana."""

    http_status = 500
    code = "internal"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or self.__class__.__name__).strip()
        self.details = details
        super().__init__(self.message)


class ConfigError(ActanaError):
    """The configuration is not usable; the message says what to change."""

    code = "config_error"


class UsageError(ActanaError):
    """The request cannot be served as sent."""

    http_status = 400
    code = "bad_request"


class AuthenticationError(UsageError):
    """Missing, unknown or revoked credentials. Send `Authorization: Bearer <workspace API key>`."""

    http_status = 401
    code = "unauthenticated"


class NotFoundError(UsageError, LookupError):
    """The object does not exist in this workspace."""

    http_status = 404
    code = "not_found"


class ConflictError(UsageError):
    """The request conflicts with the current state (for example a duplicate name)."""

    http_status = 409
    code = "conflict"


class InvalidInputError(UsageError, ValueError):
    """A field of the request is invalid.

    `field` names the field at fault, as a dotted path, so clients can show the error next to it.
    """

    http_status = 422
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.field = field


class PayloadTooLargeError(InvalidInputError):
    """The upload is larger than the configured limit."""

    http_status = 413
    code = "too_large"


class RunError(ActanaError):
    """Something failed while doing the work."""


class KeyringError(RunError):
    """A secret could not be encrypted or decrypted."""

    code = "keyring_error"
