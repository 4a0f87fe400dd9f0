"""The small, fixed set of errors every sandbox backend maps its failures onto.

Callers (the worker, the reaper, `/readyz`) handle these and nothing backend-specific: a Docker
API error, a bwrap message or an `OSError` from `/proc` is translated inside the backend. Each
leaf also inherits the builtin it resembles, so `except TimeoutError` / `except ValueError` code
keeps working. A non-zero exit code is data (`Sandbox.wait()` returns it), never an exception.
"""

from __future__ import annotations

from typing import Any

from actana.exceptions import RunError


class SandboxError(RunError):
    """The sandbox failed."""

    code = "sandbox_failed"


class SandboxUnavailableError(SandboxError):
    """The sandbox backend cannot run here (missing tool, kernel feature or permission)."""

    code = "sandbox_unavailable"


class UnknownSandboxBackendError(SandboxUnavailableError, LookupError):
    """No sandbox backend is registered under that name."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown sandbox backend {name!r}; known backends: {', '.join(known) or 'none'}. "
            "Third-party backends register under the entry-point group 'actana.sandboxes'.",
            name=name,
            known=known,
        )
        self.name = name
        self.known = known


class SandboxSpecError(SandboxError, ValueError):
    """The sandbox spec cannot be honoured as written (bad run id, unreachable command, ...)."""

    code = "sandbox_spec_invalid"


class SandboxExistsError(SandboxError, FileExistsError):
    """A sandbox for this run id exists already; remove it first."""

    code = "sandbox_exists"


class SandboxStateError(SandboxError, RuntimeError):
    """The call does not fit the sandbox's lifecycle (started twice, waited before start, ...)."""

    code = "sandbox_state"


class OutputLimitExceededError(SandboxError):
    """The sandbox wrote more to stdout than its output limit; it has been killed."""

    code = "output_limit"

    def __init__(self, limit_bytes: int, **details: Any) -> None:
        super().__init__(
            f"sandbox stdout exceeded {limit_bytes} bytes; the sandbox was killed",
            limit_bytes=limit_bytes,
            **details,
        )
        self.limit_bytes = limit_bytes


class SandboxCleanupError(SandboxError):
    """Processes or files of the sandbox survived kill/remove; `details` names what is left."""

    code = "sandbox_cleanup"


class ImageBuildError(SandboxUnavailableError):
    """The sandbox image could not be built; the message says which step failed and why."""

    code = "sandbox_image_build"
