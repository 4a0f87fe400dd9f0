"""The web UI's entry points: sign-in and sign-out, and `install_web`, which mounts it all.

`install_web(app)` adds the `/ui` pages, the `/ui/static` files, the `/` redirect, the security
headers, and error handling that answers a browser with an HTML page (a JSON client of the same
URL keeps getting JSON from the API's own handlers).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, cast

from anyio import to_thread
from fastapi import APIRouter, Cookie, FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from actana.api.deps import Context, DbSession
from actana.exceptions import ActanaError, AuthenticationError
from actana.security.api_keys import authenticate_api_key
from actana.web import crew_pages, new_run, runs_pages
from actana.web.auth import COOKIE_NAME, create_web_session, end_web_session, resolve_web_session
from actana.web.security import (
    LOGIN_CSRF_COOKIE,
    SecurityHeadersMiddleware,
    is_https,
    require_csrf,
)
from actana.web.session import LoginRequired, WebUser, check_csrf, wants_json
from actana.web.templating import STATIC_DIR, flash, render

router = APIRouter(prefix="/ui", include_in_schema=False)
# /ui/runs/new before /ui/runs/{run_id}, which would otherwise take "new" for an id.
router.include_router(new_run.router)
router.include_router(runs_pages.router)
# Engineer B's crew pages: one include line below.
router.include_router(crew_pages.router)

LOGIN_PATH = "/ui/login"
Handler = Callable[[Request, Exception], Awaitable[Response]]
MAX_KEY_CHARS = 200


def _login_page(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    """The sign-in form with a fresh double-submit CSRF token (there is no session yet)."""
    token = secrets.token_urlsafe(32)
    errors = {"api_key": error} if error else {}
    response = render(
        request,
        "login.html",
        user=None,
        csrf_token=token,
        errors=errors,
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, path=LOGIN_PATH, httponly=True, samesite="strict"
    )
    return response


@router.get("/login")
def login_form(
    request: Request,
    db: DbSession,
    actana_session: Annotated[str | None, Cookie()] = None,
) -> Response:
    if resolve_web_session(db, actana_session) is not None:
        return RedirectResponse("/ui/", status_code=303)
    return _login_page(request)


@router.post("/login")
def login(
    request: Request,
    context: Context,
    db: DbSession,
    api_key: Annotated[str, Form()] = "",
    csrf_token: Annotated[str | None, Form()] = None,
    actana_login_csrf: Annotated[str | None, Cookie()] = None,
) -> Response:
    """Check the API key and start a session; a bad key shows the form again with the error."""
    require_csrf(actana_login_csrf or "", csrf_token)
    presented = api_key.strip()
    if not presented:
        return _login_page(request, error="Enter a workspace API key.", status_code=422)
    if len(presented) > MAX_KEY_CHARS:
        return _login_page(request, error="This is too long to be an API key.", status_code=422)
    key = authenticate_api_key(db, presented)
    if key is None:
        return _login_page(
            request,
            error="This API key is unknown or revoked. Check it and try again.",
            status_code=401,
        )
    cookie = create_web_session(db, key, hours=context.settings.web_session_hours)
    response = RedirectResponse("/ui/", status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        cookie,
        max_age=int(context.settings.web_session_hours * 3600),
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request, context.settings),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH, httponly=True, samesite="strict")
    return response


@router.post("/logout")
def logout(
    user: WebUser,
    db: DbSession,
    csrf_token: Annotated[str | None, Form()] = None,
    actana_session: Annotated[str | None, Cookie()] = None,
) -> Response:
    check_csrf(user, csrf_token)
    end_web_session(db, actana_session)
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return flash(response, "Signed out.")


def _is_page(request: Request) -> bool:
    path = request.url.path
    return (path == "/ui" or path.startswith("/ui/")) and not path.startswith("/ui/static/")


def install_web(app: FastAPI) -> None:
    """Mount the UI on `app` (after the API's error handlers are installed)."""
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)

    @app.get("/ui", include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)

    app.add_middleware(SecurityHeadersMiddleware)
    # The API's own handlers (actana.api.errors): JSON clients keep getting exactly those.
    api_error = cast(Handler, app.exception_handlers[ActanaError])
    http_error = cast(Handler, app.exception_handlers[StarletteHTTPException])

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if exc.json:
            return await api_error(request, _unauthenticated())
        return RedirectResponse(LOGIN_PATH, status_code=303)

    @app.exception_handler(ActanaError)
    async def actana_error(request: Request, exc: ActanaError) -> Response:
        if not _is_page(request) or wants_json(request):
            return await api_error(request, exc)
        return await to_thread.run_sync(_error_page, request, exc.http_status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException) -> Response:
        if not _is_page(request) or wants_json(request):
            return await http_error(request, exc)
        return await to_thread.run_sync(_error_page, request, exc.status_code, str(exc.detail))


def _unauthenticated() -> ActanaError:
    return AuthenticationError("sign in again: the web session is missing or expired")


def _error_page(request: Request, status_code: int, message: str) -> Response:
    """An HTML error page; a CSRF refusal or a 404 still shows the top bar when signed in."""
    context = request.app.state.context
    with context.database.session() as db:
        user = resolve_web_session(db, request.cookies.get(COOKIE_NAME))
    title = {403: "Refused", 404: "Not found"}.get(status_code, "Something went wrong")
    if status_code == 403 and "CSRF" in message:
        title = "Refused: the form's security token did not match"
    return render(
        request, "error.html", user=user, status_code=status_code, title=title, message=message
    )
