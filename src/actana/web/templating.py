"""Rendering pages: one Jinja2 environment (autoescape always on), filters, flash messages.

Every page goes through `render`, which hands the template what `base.html` needs: the signed-in
session (workspace name, CSRF token for the `<meta>` and the forms), the flash messages of the
previous request, and the URL of the static files. A flash message travels in a short-lived
cookie (URL-quoted text, HttpOnly, SameSite=Strict) and is shown escaped like anything else.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader

from actana import __version__
from actana.web.auth import WebSession

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
FLASH_COOKIE = "actana_flash"
FLASH_KINDS = ("ok", "error")
MAX_FLASH_CHARS = 500


def format_duration(ms: int | float | None) -> str:
    """1234 -> "1.2 s", 83000 -> "1 min 23 s", 4500000 -> "1 h 15 min"; None -> an en dash.

    Every unit is cut, never rounded, exactly as `formatMs` in static/run.js and runs.js does,
    so that a duration reads the same whether the page rendered it or a script updated it.
    """
    if ms is None:
        return "\u2013"
    if ms < 1000:
        return f"{int(ms)} ms"
    tenths = int(ms // 100)
    if tenths < 600:
        return f"{tenths // 10}.{tenths % 10} s"
    minutes, rest = divmod(int(ms // 1000), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def format_time(value: datetime | None) -> str:
    """A timestamp in UTC, to the second (the page says UTC; no guessing of the viewer's zone)."""
    if value is None:
        return "\u2013"
    return value.strftime("%Y-%m-%d %H:%M:%S")


def format_size(size: int | None) -> str:
    """Bytes in the largest unit that keeps a number >= 1."""
    if size is None:
        return "\u2013"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _static_url(name: str) -> str:
    # The version in the query string busts caches on upgrade; the files themselves are static.
    return f"/ui/static/{quote(name)}?v={quote(__version__)}"


environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(duration=format_duration, time=format_time, size=format_size)
environment.globals.update(static_url=_static_url, version=__version__)


def read_flashes(request: Request) -> list[tuple[str, str]]:
    """The flash messages the previous response left, as (kind, text)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    kind, _, text = unquote(raw).partition(":")
    if kind not in FLASH_KINDS or not text:
        return []
    return [(kind, text[:MAX_FLASH_CHARS])]


def flash(response: Response, text: str, kind: str = "ok") -> Response:
    """Show `text` at the top of the next page this browser renders (e.g. after a redirect)."""
    if kind not in FLASH_KINDS:
        raise ValueError(f"flash kind must be one of {FLASH_KINDS}")
    response.set_cookie(
        FLASH_COOKIE,
        quote(f"{kind}:{text[:MAX_FLASH_CHARS]}"),
        max_age=60,
        path="/ui",
        httponly=True,
        samesite="strict",
    )
    return response


def render(
    request: Request,
    template: str,
    *,
    user: WebSession | None,
    status_code: int = 200,
    csrf_token: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render `template` with what base.html needs; consumes any pending flash message.

    Args:
        request: the request (templates may read its query string).
        template: path under `web/templates`.
        user: the signed-in session (None only on the sign-in page).
        status_code: e.g. 422 when a form is shown again with errors.
        csrf_token: only for pages without a session (the sign-in form's token).
        **context: the page's own variables.
    """
    flashes = read_flashes(request)
    values: dict[str, Any] = {
        "request": request,
        "user": user,
        "csrf_token": user.csrf_token if user is not None else (csrf_token or ""),
        "flashes": flashes,
        "errors": {},
        "nav": "",
        **context,
    }
    body = environment.get_template(template).render(values)
    response = HTMLResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})
    if flashes:
        response.delete_cookie(FLASH_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response
