"""Model endpoints: which provider and model an agent talks to, with an encrypted API key."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

import anyio
from anyio import to_thread
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from actana.api.context import AppContext
from actana.crew.common import (
    Name,
    StrictModel,
    check_http_url,
    ensure_name_free,
    get_owned,
    touch,
)
from actana.db.models import Agent, ModelEndpoint, new_id
from actana.exceptions import ActanaError, ConflictError, InvalidInputError
from actana.protocol.payloads import Message, ModelRequest, ModelTurn
from actana.providers.base import EndpointSpec, ModelCallError, ProviderCall, get_provider
from actana.providers.redact import redact
from actana.security.audit import record_audit

log = logging.getLogger(__name__)

Provider = Literal["anthropic", "openai", "gemini", "openai_compatible", "scripted"]
OWNER_KIND = "model_endpoint"
_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_NEEDS_KEY = {"anthropic", "openai", "gemini"}


class ScriptedToolCall(StrictModel):
    name: str = Field(description="Tool to call, e.g. `write_file`")
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _tool_name(cls, value: str) -> str:
        if not _TOOL_NAME.match(value):
            raise ValueError("a tool name is letters, digits, '_', '.' or '-' (max 128)")
        return value


class ScriptedTurn(StrictModel):
    """One turn of the offline `scripted` model: tool calls, or a final text."""

    tool_calls: list[ScriptedToolCall] | None = Field(default=None, min_length=1)
    text: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ScriptedTurn:
        if (self.tool_calls is None) == (self.text is None):
            raise ValueError("a turn has either `tool_calls` or `text`, not both or neither")
        return self


Script = list[ScriptedTurn]


class ModelEndpointCreate(StrictModel):
    name: Name
    provider: Provider
    model: str = Field(default="", max_length=200, description="Model id, e.g. claude-sonnet-4-5")
    base_url: str | None = Field(default=None, max_length=2000)
    api_key: SecretStr | None = Field(default=None, max_length=8192, description="Write-only")
    script: Script | None = Field(default=None, max_length=1000)


class ModelEndpointUpdate(StrictModel):
    """Fields to change; `api_key: null` removes the stored key."""

    name: Name | None = None
    provider: Provider | None = None
    model: str | None = Field(default=None, max_length=200)
    base_url: str | None = Field(default=None, max_length=2000)
    api_key: SecretStr | None = Field(default=None, max_length=8192)
    script: Script | None = Field(default=None, max_length=1000)


class ModelEndpointPublic(BaseModel):
    id: str
    name: str
    provider: str
    model: str
    base_url: str | None
    api_key_set: bool
    script: list[dict[str, Any]] | None
    created_at: datetime
    updated_at: datetime


def _validate(row: ModelEndpoint, *, key_set: bool) -> None:
    """Cross-field rules, checked on the final state after a create or an update."""
    if row.base_url is not None:
        check_http_url(row.base_url, "base_url")
    if row.provider == "scripted":
        if not row.script:
            raise InvalidInputError("a scripted endpoint needs a non-empty script", field="script")
        if key_set:
            raise InvalidInputError("a scripted endpoint takes no api_key", field="api_key")
        return
    if row.script is not None:
        raise InvalidInputError("only the scripted provider takes a script", field="script")
    if not row.model:
        raise InvalidInputError(f"provider {row.provider} needs a model", field="model")
    if row.provider == "openai_compatible" and not row.base_url:
        raise InvalidInputError("openai_compatible needs a base_url", field="base_url")
    if row.provider in _NEEDS_KEY and not key_set:
        raise InvalidInputError(f"provider {row.provider} needs an api_key", field="api_key")


def to_public(context: AppContext, session: Session, row: ModelEndpoint) -> ModelEndpointPublic:
    return ModelEndpointPublic(
        id=row.id,
        name=row.name,
        provider=row.provider,
        model=row.model,
        base_url=row.base_url,
        api_key_set="api_key" in context.secrets.names(session, OWNER_KIND, row.id),
        script=row.script,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create(
    context: AppContext, session: Session, workspace_id: str, body: ModelEndpointCreate, actor: str
) -> ModelEndpoint:
    ensure_name_free(session, ModelEndpoint, workspace_id, body.name, "model endpoint")
    row = ModelEndpoint(
        id=new_id("me"),
        workspace_id=workspace_id,
        name=body.name,
        provider=body.provider,
        model=body.model or ("script" if body.provider == "scripted" else ""),
        base_url=body.base_url,
        script=[t.model_dump(exclude_none=True) for t in body.script] if body.script else None,
    )
    _validate(row, key_set=body.api_key is not None)
    session.add(row)
    if body.api_key is not None:
        context.secrets.put(
            session,
            workspace_id=workspace_id,
            owner_kind=OWNER_KIND,
            owner_id=row.id,
            name="api_key",
            value=body.api_key.get_secret_value(),
            actor=actor,
        )
    return row


def update(
    context: AppContext,
    session: Session,
    workspace_id: str,
    endpoint_id: str,
    body: ModelEndpointUpdate,
    actor: str,
) -> ModelEndpoint:
    row = get_owned(session, ModelEndpoint, workspace_id, endpoint_id, "model endpoint")
    given = body.model_fields_set
    if "name" in given and body.name is not None:
        ensure_name_free(
            session, ModelEndpoint, workspace_id, body.name, "model endpoint", exclude_id=row.id
        )
        row.name = body.name
    for field in ("provider", "model"):
        value = getattr(body, field)
        if field in given and value is not None:
            setattr(row, field, value)
    if "base_url" in given:
        row.base_url = body.base_url
    if "script" in given:
        row.script = [t.model_dump(exclude_none=True) for t in body.script] if body.script else None
    key_set = "api_key" in context.secrets.names(session, OWNER_KIND, row.id)
    if "api_key" in given:
        key_set = body.api_key is not None
    _validate(row, key_set=key_set)
    if "api_key" in given:
        if body.api_key is None:
            context.secrets.delete(session, OWNER_KIND, row.id, "api_key")
        else:
            context.secrets.put(
                session,
                workspace_id=workspace_id,
                owner_kind=OWNER_KIND,
                owner_id=row.id,
                name="api_key",
                value=body.api_key.get_secret_value(),
                actor=actor,
            )
    touch(row)
    return row


def delete(context: AppContext, session: Session, workspace_id: str, endpoint_id: str) -> None:
    row = get_owned(session, ModelEndpoint, workspace_id, endpoint_id, "model endpoint")
    users = list(session.scalars(select(Agent.name).where(Agent.model_endpoint_id == row.id)))
    if users:
        raise ConflictError(
            f"model endpoint {row.name!r} is used by agent(s) {', '.join(sorted(users))}; "
            "point them elsewhere first"
        )
    context.secrets.delete(session, OWNER_KIND, row.id)
    session.delete(row)


# --- Trying an endpoint ----------------------------------------------------------------------

TRY_PROMPT = "Reply with the single word: ok"
TRY_MAX_TOKENS = 64
"""Small, yet enough for a model that thinks before it answers to get a word out."""


class EndpointTryResult(BaseModel):
    """The verdict of one tiny call through an endpoint.

    `ok` true: the upstream answered (`latency_ms`, `usage`, the start of its `reply`).
    `ok` false: `error` says what went wrong (never with key material) and `status` is the
    upstream's HTTP status when it sent one (401 bad key, 404 unknown model, 429 rate limited).
    """

    ok: bool
    provider: str
    model: str
    latency_ms: int
    usage: dict[str, int] | None = None
    reply: str | None = None
    error: str | None = None
    status: int | None = None


def _load_for_try(
    context: AppContext, workspace_id: str, endpoint_id: str
) -> tuple[EndpointSpec, str | None]:
    with context.database.session() as session:
        row = get_owned(session, ModelEndpoint, workspace_id, endpoint_id, "model endpoint")
        spec = EndpointSpec(row.provider, row.model, row.base_url, row.script)
        return spec, context.secrets.get(session, OWNER_KIND, row.id, "api_key")


async def _one_turn(spec: EndpointSpec, api_key: str | None, timeout: float) -> ModelTurn:
    request = ModelRequest(
        system="", messages=[Message(role="user", text=TRY_PROMPT)], max_tokens=TRY_MAX_TOKENS
    )
    call = ProviderCall(endpoint=spec, request=request, turn_index=0, timeout_sec=timeout)
    stream = get_provider(spec.provider).turn(call, api_key)
    try:
        async for item in stream:
            if isinstance(item, ModelTurn):
                return item
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
    raise ModelCallError(f"the {spec.provider} provider ended without a turn")


async def try_endpoint(
    context: AppContext, workspace_id: str, endpoint_id: str, actor: str
) -> EndpointTryResult:
    """Make one tiny call through the endpoint (its provider, model, base URL and key).

    Upstream failures are the result (`ok` false), not exceptions; one attempt, no retry, at
    most `model_endpoint_test_timeout_sec`. Audited (outcome and status only).

    Raises:
        NotFoundError: no such endpoint in this workspace.
    """
    spec, api_key = await to_thread.run_sync(_load_for_try, context, workspace_id, endpoint_id)
    timeout = context.settings.model_endpoint_test_timeout_sec
    result = EndpointTryResult(ok=False, provider=spec.provider, model=spec.model, latency_ms=0)
    started = time.monotonic()
    try:
        with anyio.fail_after(timeout):
            turn = await _one_turn(spec, api_key, timeout)
        result.ok = True
        result.usage = asdict(turn.usage)
        result.reply = (turn.text or "")[:200] or None
    except TimeoutError:
        result.error = f"the upstream did not answer within {timeout:g} s"
    except ActanaError as exc:  # ModelCallError, or a key that cannot be decrypted
        result.error = redact(exc.message, api_key)
        result.status = getattr(exc, "status", None)
    except Exception as exc:
        log.error(
            "trying model endpoint %s: the provider failed: %s",
            endpoint_id,
            redact(f"{type(exc).__name__}: {exc}", api_key),
        )
        result.error = (
            f"the {spec.provider} provider failed unexpectedly ({type(exc).__name__}); "
            "the server log has the details"
        )
    finally:
        api_key = None
    result.latency_ms = round((time.monotonic() - started) * 1000)

    def audit() -> None:
        with context.database.session() as session:
            record_audit(
                session,
                "model_endpoint.tested",
                actor=actor,
                workspace_id=workspace_id,
                target=endpoint_id,
                ok=result.ok,
                status=result.status,
                latency_ms=result.latency_ms,
            )

    await to_thread.run_sync(audit)
    return result
