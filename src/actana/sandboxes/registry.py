"""Sandbox backends by name: `get_backend("native", root_dir=...)`.

Backends register a factory with `@sandbox_backend(name)`; the factory imports its backend module
only when called, so choosing "native" never imports the Docker SDK and vice versa. Third-party
packages add backends through the entry-point group `actana.sandboxes` (the entry point loads to a
factory), read once, on the first lookup of an unknown name. This module and the package
`__init__` are the only places that import backend modules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from actana.sandboxes.base import SandboxBackend
from actana.sandboxes.errors import UnknownSandboxBackendError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "actana.sandboxes"

BackendFactory = Callable[[Path, Mapping[str, Any]], SandboxBackend]
"""`(root_dir, options) -> backend`: root_dir holds the backend's host state; options are the
backend's own settings (unknown keys are the backend's to reject)."""

F = TypeVar("F", bound=BackendFactory)

_factories: dict[str, BackendFactory] = {}
_entry_points_loaded = False


def sandbox_backend(name: str) -> Callable[[F], F]:
    """Register the decorated factory under `name` (a later registration replaces it)."""

    def register(factory: F) -> F:
        _factories[name] = factory
        return factory

    return register


def unregister_sandbox_backend(name: str) -> None:
    """Forget a backend (tests register fakes and remove them at teardown)."""
    _factories.pop(name, None)


def known_backends() -> list[str]:
    """Names that `get_backend` accepts, including those of installed plugins."""
    _load_entry_points()
    return sorted(_factories)


def get_backend(name: str, *, root_dir: Path, **options: Any) -> SandboxBackend:
    """Build the backend registered under `name`.

    Raises:
        UnknownSandboxBackendError: no backend of that name; the message lists the known ones.
        SandboxUnavailableError: the backend rejects the options or cannot run here.
    """
    factory = _factories.get(name)
    if factory is None:
        _load_entry_points()
        factory = _factories.get(name)
    if factory is None:
        raise UnknownSandboxBackendError(name, sorted(_factories))
    return factory(root_dir, options)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _factories:
            continue  # built-ins win: a plugin cannot silently replace "native"
        try:
            _factories[ep.name] = ep.load()
        except Exception:
            # A broken plugin must not take the built-in backends down with it.
            logger.exception("cannot load sandbox backend plugin %r (%s)", ep.name, ep.value)


# Built-in backends. Imports happen inside the factories, on first use.


@sandbox_backend("native")
def _native(root_dir: Path, options: Mapping[str, Any]) -> SandboxBackend:
    from actana.sandboxes.native import NativeSandboxBackend

    return NativeSandboxBackend.from_options(root_dir, options)


@sandbox_backend("docker")
def _docker(root_dir: Path, options: Mapping[str, Any]) -> SandboxBackend:
    from actana.sandboxes.docker import DockerSandboxBackend

    return DockerSandboxBackend.from_options(root_dir, options)
