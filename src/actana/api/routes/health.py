"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from actana import __version__
from actana.api.deps import Context
from actana.db import migrate
from actana.exceptions import ActanaError
from actana.security.master_keys import verify_keyring

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz")
def readyz(context: Context) -> JSONResponse:
    """Ready to serve: database reachable, schema current, master key valid, and the sandboxes
    usable (the native one, and the Docker daemon with the right image, unless container runs
    may fall back to native), with the isolation each gives runs."""
    checks: dict[str, Any] = {}
    try:
        with context.database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "dialect": context.database.engine.dialect.name}
        current = migrate.is_current(context.database)
        checks["migrations"] = {"ok": current, "head": migrate.head_revision()}
    except Exception as exc:  # readiness reports any failure; it never raises
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    if checks["database"]["ok"]:
        try:
            verify_keyring(context.database, context.keyring)
            checks["master_key"] = {"ok": True, "key_id": context.keyring.primary.key_id}
        except ActanaError as exc:
            checks["master_key"] = {"ok": False, "error": exc.message}
    for name, backend in (("native", context.native_backend), ("docker", context.docker_backend)):
        try:
            described = backend.describe()
            checks[f"sandbox_{name}"] = {"ok": bool(described.get("available")), **described}
        except Exception as exc:  # reported, never raised: readiness must answer
            checks[f"sandbox_{name}"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    # Ready means runs can be served: the docker sandbox is needed unless container runs may
    # fall back to native (it is still reported either way).
    optional = {"sandbox_docker"} if context.settings.sandbox_fallback_native else set()
    ready = all(check.get("ok") for name, check in checks.items() if name not in optional)
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
