"""Sandboxes: one interface, one module per backend, a registry keyed by name.

    backend = get_backend("native", root_dir=data_dir / "sandboxes")
    async with await backend.create(spec) as sandbox: ...

Only this package's registry imports backend modules; everything else goes through
`get_backend` and the types below.
"""

from actana.sandboxes.base import (
    Sandbox,
    SandboxBackend,
    SandboxLimits,
    SandboxRef,
    SandboxSpec,
    sandbox_environment,
)
from actana.sandboxes.errors import (
    OutputLimitExceededError,
    SandboxCleanupError,
    SandboxError,
    SandboxExistsError,
    SandboxSpecError,
    SandboxStateError,
    SandboxUnavailableError,
    UnknownSandboxBackendError,
)
from actana.sandboxes.registry import get_backend, known_backends, sandbox_backend

__all__ = [
    "OutputLimitExceededError",
    "Sandbox",
    "SandboxBackend",
    "SandboxCleanupError",
    "SandboxError",
    "SandboxExistsError",
    "SandboxLimits",
    "SandboxRef",
    "SandboxSpec",
    "SandboxSpecError",
    "SandboxStateError",
    "SandboxUnavailableError",
    "UnknownSandboxBackendError",
    "get_backend",
    "known_backends",
    "sandbox_backend",
    "sandbox_environment",
]
