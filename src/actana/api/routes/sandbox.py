"""`/sandbox/v1`: the only API a sandbox can reach (over its run channel).

Every call is authenticated by a token the worker handed to this run's sandbox: the three
one-time tokens, or the run's session token for model calls. Every failure is the same 401.
On a run's own channel (actana.runs.channel), the tokens are pinned to that run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from actana.api.bodies import read_capped_body
from actana.api.deps import Context, DbSession
from actana.db.models import Run
from actana.exceptions import AuthenticationError, InvalidInputError
from actana.protocol.payloads import ModelRequest
from actana.providers.gateway import model_turn
from actana.runs.handover import build_config, build_env
from actana.runs.outputs import receive_outputs
from actana.security import otp

log = logging.getLogger(__name__)
router = APIRouter(prefix="/sandbox/v1", tags=["sandbox"], include_in_schema=False)
_model_request = TypeAdapter(ModelRequest)
_INVALID = "invalid, expired or already used token"
MAX_MODEL_REQUEST_BYTES = 16 * 1024 * 1024


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(_INVALID)
    return token.strip()


def _channel_run(request: Request) -> str | None:
    # Set by actana.runs.channel on requests that came in over a run's own socket.
    run_id = request.scope.get("actana_channel_run")
    return run_id if isinstance(run_id, str) else None


def _redeem(session: Session, request: Request, authorization: str | None, purpose: str) -> Run:
    run_id = otp.redeem(session, _bearer(authorization), purpose, run_id=_channel_run(request))
    run = session.get(Run, run_id) if run_id else None
    if run is None or run.status != "running":
        raise AuthenticationError(_INVALID)
    return run


@router.get("/env")
def get_env(
    request: Request,
    context: Context,
    session: DbSession,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Environment variables and setup script (OTP_SETUP)."""
    run = _redeem(session, request, authorization, otp.SETUP)
    return asdict(build_env(context, session, run))


@router.get("/config")
def get_config(
    request: Request,
    context: Context,
    session: DbSession,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Agent definition, prompt, limits and the session token (OTP_RUN)."""
    run = _redeem(session, request, authorization, otp.RUN)
    return asdict(build_config(context, session, run))


@router.post("/results")
async def post_results(
    request: Request,
    context: Context,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """All output files in one multipart request (OTP_UPLOAD)."""
    token = _bearer(authorization)
    return await receive_outputs(context, request, token, _channel_run(request))


@router.post("/model")
async def post_model(
    request: Request,
    context: Context,
    authorization: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """One model turn through the gateway (session token); answers NDJSON.

    The body is the conversation only (`ModelRequest`): a field that would choose a model,
    endpoint, base URL or key is refused with a 422, and no header of the request other than
    the session token is read (the providers build their own upstream requests).
    """
    token = _bearer(authorization)
    with context.database.session() as session:
        run_id = otp.check_session_token(session, token, run_id=_channel_run(request))
        run = session.get(Run, run_id) if run_id else None
        if run is None or run.status != "running":
            raise AuthenticationError(_INVALID)
    body = await read_capped_body(request, MAX_MODEL_REQUEST_BYTES)
    try:
        model_request = _model_request.validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])[:200]  # names come from the sandbox
        if first["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            log.warning("run %s: model request refused: unknown field %r", run.id, field)
            raise InvalidInputError(
                f"{field}: unknown field; a model request is the conversation only, the run's "
                "agent decides the model, endpoint and key",
                field=field,
            ) from None
        raise InvalidInputError(f"{field}: {first['msg']}", field=field) from None

    async def lines() -> AsyncIterator[bytes]:
        async for line in model_turn(context, run.id, model_request):
            yield (json.dumps(line, separators=(",", ":")) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")
