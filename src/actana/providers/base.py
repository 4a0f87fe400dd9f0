"""The provider interface and its registry.

A provider turns one provider-neutral `ModelRequest` into one `ModelTurn`, optionally streaming
text deltas first. It gets the decrypted key for this one call only and must not keep it.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from actana.exceptions import RunError
from actana.protocol.payloads import GatewayDelta, ModelRequest, ModelTurn


class ModelCallError(RunError):
    """The model call failed; the message is safe to show (it never holds key material).

    `retryable` (429, 5xx, a dropped connection) lets the gateway try again, with backoff and
    jitter, within the run's deadline, as long as nothing of this call was streamed yet;
    `retry_after` is the upstream's own hint in seconds, when it gave one.
    """

    code = "model_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


@dataclass(frozen=True)
class EndpointSpec:
    """The parts of a model endpoint a provider needs (the key travels separately)."""

    provider: str
    model: str
    base_url: str | None
    script: list[dict[str, Any]] | None


@dataclass(frozen=True)
class ProviderCall:
    endpoint: EndpointSpec
    request: ModelRequest
    turn_index: int
    """0 for the run's first model call, 1 for the second, ..."""
    timeout_sec: float = 600.0
    """Time left before the run's deadline: no upstream call of this turn may take longer."""


class ModelProvider(ABC):
    name: str

    @abstractmethod
    def turn(
        self, call: ProviderCall, api_key: str | None
    ) -> AsyncIterator[GatewayDelta | ModelTurn]:
        """Stream zero or more deltas, then exactly one `ModelTurn`.

        Raises:
            ModelCallError: the upstream refused or failed, with a message that helps.
        """


_FACTORIES: dict[str, Callable[[], ModelProvider]] = {}


def model_provider(
    name: str,
) -> Callable[[Callable[[], ModelProvider]], Callable[[], ModelProvider]]:
    """Register a zero-argument provider factory under `name` (SDK imports stay lazy)."""

    def register(factory: Callable[[], ModelProvider]) -> Callable[[], ModelProvider]:
        _FACTORIES[name] = factory
        return factory

    return register


def get_provider(name: str) -> ModelProvider:
    """The provider registered as `name`.

    Raises:
        ModelCallError: no such provider in this installation.
    """
    _load_builtin()
    factory = _FACTORIES.get(name)
    if factory is None:
        known = ", ".join(sorted(_FACTORIES))
        raise ModelCallError(f"provider {name!r} is not available here (known: {known})")
    return factory()


BUILTIN_MODULES = ("scripted", "anthropic_messages", "openai_chat", "gemini_genai")
"""Modules under actana.providers that register the built-in providers when imported. Each
imports its SDK only when a call needs it, so that listing providers stays cheap."""


def _load_builtin() -> None:
    for module in BUILTIN_MODULES:
        name = f"actana.providers.{module}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a missing module *inside* a provider is a real error
                raise
