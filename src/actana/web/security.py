"""Browser-facing hardening: security headers on every UI response, and CSRF checks.

The CSP allows scripts, styles and connections from our own origin only and no inline code at
all, so even a string that slipped past escaping could not run. CSRF: the session cookie is
SameSite=Strict already; on top of that every state-changing form carries the session's token
(and every JavaScript POST sends it as `X-CSRF-Token`), compared in constant time.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actana.exceptions import UsageError
from actana.settings import Settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# Before sign-in there is no session to hold a token: the login form double-submits this cookie.
LOGIN_CSRF_COOKIE = "actana_login_csrf"


class CsrfError(UsageError):
    """The form or request lacks a valid CSRF token. Reload the page and try again."""

    http_status = 403
    code = "csrf_failed"


def tokens_match(expected: str, submitted: str | None) -> bool:
    """Constant-time comparison; a missing or empty token never matches."""
    if not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


def require_csrf(expected: str, submitted: str | None) -> None:
    """Raise CsrfError unless `submitted` is the expected token, saying which case it is."""
    if not submitted:
        raise CsrfError("the CSRF token is missing: reload the page and submit the form again")
    if not tokens_match(expected, submitted):
        raise CsrfError("the CSRF token is wrong or expired: reload the page and try again")


def is_https(request: Request, settings: Settings) -> bool:
    """Whether the browser reached us over HTTPS (through a trusted proxy's header if allowed)."""
    if settings.web_trust_forwarded_proto:
        forwarded = request.headers.get("x-forwarded-proto", "")
        if forwarded:
            return forwarded.split(",")[0].strip().lower() == "https"
    return request.scope.get("scheme") == "https"


def _is_ui_path(path: str) -> bool:
    return path == "/" or path == "/ui" or path.startswith("/ui/")


class SecurityHeadersMiddleware:
    """Adds the security headers to every response under `/ui` (and the `/` redirect).

    A pure ASGI middleware, so streamed API responses elsewhere pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_ui_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + list(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
