"""Signing in to the web UI, the session cookie, CSRF, security headers and tenant isolation,
at the HTTP level (no browser): what a browser would be sent and what the server accepts."""

from __future__ import annotations

import hashlib
from contextlib import closing
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from starlette.requests import Request

from actana.db.models import WebSession, utcnow
from actana.security.api_keys import revoke_api_key
from actana.settings import Settings
from actana.web.security import CSP, is_https
from tests.integration.web.conftest import form_token, meta_token, sign_in


def _set_cookie(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")


def test_sign_in_sets_an_httponly_strict_cookie_and_stores_only_its_hash(
    live_server, tenant, context
):
    with httpx.Client(base_url=live_server.url) as client:
        assert client.get("/ui/").status_code == 303  # not signed in: to the sign-in page
        assert client.get("/ui/").headers["location"] == "/ui/login"
        page = client.get("/ui/login")
        r = client.post(
            "/ui/login", data={"api_key": tenant.api_key, "csrf_token": form_token(page.text)}
        )
        assert r.status_code == 303
        cookie = _set_cookie(r, "actana_session")
        attributes = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in attributes
        assert "samesite=strict" in attributes
        assert "path=/" in attributes
        assert "secure" not in attributes  # plain http: a Secure cookie would never come back
        value = client.cookies["actana_session"]
        home = client.get("/ui/")
        assert home.status_code == 200
        assert "alpha" in home.text  # the workspace's name in the top bar
    with context.database.session() as session:
        stored = session.scalars(select(WebSession)).all()
    assert [s.id for s in stored] == [hashlib.sha256(value.encode()).hexdigest()]
    assert stored[0].workspace_id == tenant.id
    hours = (stored[0].expires_at - stored[0].created_at).total_seconds() / 3600
    assert hours == pytest.approx(12)


def test_the_cookie_is_secure_behind_an_https_proxy(live_server, tenant, context):
    context.settings.web_trust_forwarded_proto = True
    with httpx.Client(base_url=live_server.url) as client:
        page = client.get("/ui/login")
        r = client.post(
            "/ui/login",
            data={"api_key": tenant.api_key, "csrf_token": form_token(page.text)},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert r.status_code == 303
        attributes = [p.strip().lower() for p in _set_cookie(r, "actana_session").split(";")]
        assert "secure" in attributes


def _request(scheme: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-proto", forwarded.encode())] if forwarded else []
    scope = {"type": "http", "scheme": scheme, "path": "/", "headers": headers, "query_string": b""}
    return Request(scope)


@pytest.mark.parametrize(
    ("scheme", "forwarded", "trust", "expected"),
    [
        ("http", None, False, False),
        ("https", None, False, True),
        ("http", "https", False, False),  # a client may not claim HTTPS unless told to trust it
        ("http", "https", True, True),
        ("https", "http", True, False),
        ("http", "https, http", True, True),  # the first hop is the client's
    ],
)
def test_https_is_judged_from_the_scheme_or_a_trusted_proxy_header(
    scheme, forwarded, trust, expected
):
    settings = Settings(_env_file=None, web_trust_forwarded_proto=trust)
    assert is_https(_request(scheme, forwarded), settings) is expected


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("ak_nope.wrong", "unknown or revoked"),
        ("", "Enter a workspace API key"),
        ("x" * 500, "too long"),
    ],
)
def test_a_bad_key_shows_the_form_again_with_the_error_next_to_the_field(
    live_server, tenant, key, message
):
    with httpx.Client(base_url=live_server.url) as client:
        page = client.get("/ui/login")
        r = client.post("/ui/login", data={"api_key": key, "csrf_token": form_token(page.text)})
        assert r.status_code in (401, 422)
        assert 'id="api_key-error"' in r.text
        assert message in r.text
        assert "actana_session" not in client.cookies
        # a real key's id with a wrong secret: the same refusal
        wrong = tenant.api_key[:-4] + "abcd"
        page = client.get("/ui/login")
        r = client.post("/ui/login", data={"api_key": wrong, "csrf_token": form_token(page.text)})
        assert r.status_code == 401
        assert "actana_session" not in client.cookies


def test_the_sign_in_form_needs_its_csrf_token(live_server, tenant):
    with httpx.Client(base_url=live_server.url) as client:
        page = client.get("/ui/login")
        token = form_token(page.text)
        missing = client.post("/ui/login", data={"api_key": tenant.api_key})
        assert missing.status_code == 403
        assert "CSRF token is missing" in missing.text
        wrong = client.post(
            "/ui/login", data={"api_key": tenant.api_key, "csrf_token": "x" + token}
        )
        assert wrong.status_code == 403
        assert "actana_session" not in client.cookies
    # the token of another browser (no matching cookie) is refused too
    with httpx.Client(base_url=live_server.url) as other:
        r = other.post("/ui/login", data={"api_key": tenant.api_key, "csrf_token": token})
        assert r.status_code == 403


def test_sign_out_needs_the_token_and_ends_the_session(live_server, tenant, context):
    with closing(sign_in(live_server.url, tenant.api_key)) as client:
        cookie = client.cookies["actana_session"]
        home = client.get("/ui/")
        assert client.post("/ui/logout").status_code == 403
        assert client.post("/ui/logout", data={"csrf_token": "wrong"}).status_code == 403
        assert client.get("/ui/").status_code == 200  # still signed in
        r = client.post("/ui/logout", data={"csrf_token": form_token(home.text)})
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/login"
        assert "Signed out" in client.get("/ui/login").text
    # the old cookie is worth nothing now, even replayed by hand
    with httpx.Client(base_url=live_server.url, cookies={"actana_session": cookie}) as replay:
        assert replay.get("/ui/").status_code == 303
        r = replay.get(tenant.path("/runs"))
        assert r.status_code == 401
    with context.database.session() as session:
        assert session.scalars(select(WebSession)).all() == []


def test_revoking_the_api_key_ends_its_web_sessions(live_server, tenant, context):
    with closing(sign_in(live_server.url, tenant.api_key)) as client:
        assert client.get("/ui/").status_code == 200
        key_id = tenant.api_key.split(".")[0]
        with context.database.session() as session:
            revoke_api_key(session, tenant.id, key_id, actor="test")
        assert client.get("/ui/").status_code == 303
        assert client.get(tenant.path("/runs")).status_code == 401
        # our JavaScript's requests get a 401, not a redirect to HTML
        r = client.get("/ui/runs", headers={"X-Requested-With": "fetch"})
        assert r.status_code == 401


def test_an_expired_session_is_refused_and_swept_at_the_next_sign_in(
    live_server, tenant, other_tenant, context
):
    with closing(sign_in(live_server.url, tenant.api_key)) as client:
        assert client.get("/ui/").status_code == 200
        with context.database.session() as session:
            row = session.scalars(select(WebSession)).one()
            row.expires_at = utcnow() - timedelta(seconds=1)
            expired_id = row.id
        assert client.get("/ui/").status_code == 303
        assert client.get(tenant.path("/runs")).status_code == 401
    # a sign-in by anyone (another workspace here) deletes every expired row
    sign_in(live_server.url, other_tenant.api_key).close()
    with context.database.session() as session:
        left = session.scalars(select(WebSession)).all()
    assert expired_id not in [row.id for row in left]
    assert [row.workspace_id for row in left] == [other_tenant.id]


def test_the_api_accepts_the_cookie_and_wants_the_csrf_header_on_posts(
    live_server, tenant, other_tenant
):
    with closing(sign_in(live_server.url, tenant.api_key)) as client:
        page = client.get("/ui/")
        token = meta_token(page.text)
        assert client.get(tenant.path("/runs")).status_code == 200
        body = {"name": "m", "provider": "scripted", "script": [{"text": "hi"}]}
        no_header = client.post(tenant.path("/model-endpoints"), json=body)
        assert no_header.status_code == 403
        assert no_header.json()["error"]["code"] == "csrf_failed"
        wrong = client.post(
            tenant.path("/model-endpoints"), json=body, headers={"X-CSRF-Token": token + "x"}
        )
        assert wrong.status_code == 403
        ok = client.post(
            tenant.path("/model-endpoints"), json=body, headers={"X-CSRF-Token": token}
        )
        assert ok.status_code == 201, ok.text
        # every method that changes something wants the header, not only POST
        item = tenant.path(f"/model-endpoints/{ok.json()['id']}")
        for method, extra in (("PATCH", {"json": {"name": "m2"}}), ("DELETE", {})):
            refused = client.request(method, item, **extra)
            assert refused.status_code == 403, (method, refused.text)
            assert refused.json()["error"]["code"] == "csrf_failed"
        assert client.get(item).json()["name"] == "m"  # nothing changed, nothing deleted
        renamed = client.patch(item, json={"name": "m2"}, headers={"X-CSRF-Token": token})
        assert renamed.status_code == 200, renamed.text
        # another workspace's objects: 404, whatever the method and the token
        assert client.get(other_tenant.path("/runs")).status_code == 404
        r = client.post(
            other_tenant.path("/model-endpoints"), json=body, headers={"X-CSRF-Token": token}
        )
        assert r.status_code == 404
        # a Bearer key still wins over the cookie (and needs no CSRF header)
        r = client.get(
            other_tenant.path("/runs"), headers={"Authorization": f"Bearer {other_tenant.api_key}"}
        )
        assert r.status_code == 200


@pytest.mark.parametrize(
    "path", ["/ui/login", "/ui/", "/ui/runs", "/ui/runs/new", "/ui/runs/run_nope", "/ui/nope"]
)
def test_every_ui_response_has_the_security_headers(live_server, tenant, path):
    with closing(sign_in(live_server.url, tenant.api_key)) as client:
        for r in (
            client.get(path),
            httpx.get(live_server.url + path),
            client.get("/ui/static/app.css"),
        ):
            assert r.headers["content-security-policy"] == CSP
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "same-origin"
            assert r.headers["x-frame-options"] == "DENY"
    assert "'unsafe-inline'" not in CSP


def test_the_root_redirects_to_the_ui(live_server):
    r = httpx.get(live_server.url + "/")
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/"
