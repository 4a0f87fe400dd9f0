"""The one place exceptions become HTTP responses: `{"error": {"code", "message", "field"?}}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from actana.exceptions import ActanaError, AuthenticationError, InvalidInputError

log = logging.getLogger(__name__)


def _body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def _field_path(location: tuple[object, ...] | list[object]) -> str:
    # FastAPI reports ("body", "variables", 0, "name"); clients want "variables.0.name".
    parts = [str(p) for p in location]
    if parts and parts[0] in {"body", "query", "path", "header", "form"}:
        # ("body", 12) is a JSON syntax error at character 12: the body as a whole is at fault.
        if parts[0] == "body" and len(parts) == 2 and parts[1].isdigit():
            return "body"
        parts = parts[1:]
    return ".".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error the app can raise to a JSON response with the right status."""

    @app.exception_handler(ActanaError)
    async def actana_error(_request: Request, exc: ActanaError) -> JSONResponse:
        extra: dict[str, object] = {}
        if isinstance(exc, InvalidInputError) and exc.field:
            extra["field"] = exc.field
        if exc.http_status >= 500:
            log.error("request failed: %s", exc.message)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
        return JSONResponse(
            _body(exc.code, exc.message, **extra), status_code=exc.http_status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": _field_path(e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"field": "", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return JSONResponse(
            _body("invalid", message, field=first["field"], problems=problems), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(_body(code, str(exc.detail)), status_code=exc.status_code)
