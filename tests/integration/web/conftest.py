"""Helpers for the web UI tests: a browser-like client (cookies, no JavaScript) signed in with a
workspace's API key, and a reader for the hidden CSRF field of a form."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import LiveServer, Tenant

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def form_token(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "the page has no csrf_token field"
    return match.group(1)


def meta_token(html: str) -> str:
    match = CSRF_META.search(html)
    assert match, "the page has no csrf-token meta"
    return match.group(1)


def sign_in(base_url: str, api_key: str, **client_args: object) -> httpx.Client:
    """A client holding a web session for the key (as a browser would after the sign-in form)."""
    client = httpx.Client(base_url=base_url, timeout=30, **client_args)  # type: ignore[arg-type]
    page = client.get("/ui/login")
    assert page.status_code == 200
    r = client.post("/ui/login", data={"api_key": api_key, "csrf_token": form_token(page.text)})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/ui/"
    return client


@pytest.fixture
def browser(live_server: LiveServer) -> Iterator[Callable[[Tenant], httpx.Client]]:
    """`browser(tenant)`: a client signed in to the tenant's workspace; closed at teardown."""
    clients: list[httpx.Client] = []

    def _open(tenant: Tenant) -> httpx.Client:
        clients.append(sign_in(live_server.url, tenant.api_key))
        return clients[-1]

    yield _open
    for client in clients:
        client.close()
