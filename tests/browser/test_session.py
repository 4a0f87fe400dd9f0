"""Sign-in, sign-out and CSRF, seen from a real browser: the cookie's flags, a form posted
without its token refused while the same post with it goes through, another workspace's run out
of reach, and a signed-out cookie that no longer opens anything."""

from __future__ import annotations

import re

from playwright.sync_api import BrowserContext, Cookie, Page

from actana.api.context import AppContext
from tests.browser.conftest import Crew, PageWatch, sign_in, wait_until
from tests.conftest import LiveServer, Tenant, make_tenant

COOKIE = "actana_session"


def session_cookie(context: BrowserContext) -> Cookie | None:
    return next((c for c in context.cookies() if c["name"] == COOKIE), None)


def status_of(page: Page, path: str) -> int:
    """A page is opened in the tab; an API URL (downloads included) is fetched with the tab's
    cookies."""
    if path.startswith("/ui/"):
        response = page.goto(path)
        assert response is not None
        return response.status
    return page.request.get(path).status


def test_wrong_key_is_refused_next_to_the_field(
    page: Page, watch: PageWatch, workspace: Tenant
) -> None:
    watch.expect_console_error(r"status of 401 .*/ui/login\)$")
    page.goto("/ui/login")
    page.fill("#api_key", workspace.api_key + "x")
    page.click("#login-form button[type=submit]")
    page.locator("#api_key-error").wait_for()
    assert "/ui/login" in page.url
    assert session_cookie(page.context) is None


def test_session_cookie_flags_and_sign_out(
    signed_in: Page, browser_context: BrowserContext
) -> None:
    page = signed_in
    cookie = session_cookie(browser_context)
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    # Not readable from the page's scripts either.
    assert COOKIE not in page.evaluate("document.cookie")

    page.click("#logout")
    page.wait_for_url(re.compile(r"/ui/login"))
    assert session_cookie(browser_context) is None
    page.goto("/ui/")
    assert re.search(r"/ui/login", page.url), page.url
    page.locator("#login-form").wait_for()

    # The server ended the session too: the old cookie, put back by hand, opens nothing.
    browser_context.add_cookies(
        [
            {
                "name": COOKIE,
                "value": cookie["value"],
                "domain": cookie["domain"],
                "path": cookie["path"],
            }
        ]
    )
    page.goto("/ui/")
    assert re.search(r"/ui/login", page.url), page.url


def test_form_post_without_csrf_token_is_refused(
    signed_in: Page, browser_context: BrowserContext, workspace: Tenant
) -> None:
    page = signed_in
    token = page.get_attribute("meta[name=csrf-token]", "content")
    assert token
    # page.request shares the browser's cookies: the session goes along, only the token varies.
    missing = page.request.post("/ui/logout", form={}, max_redirects=0)
    assert missing.status == 403, missing.status
    wrong = page.request.post("/ui/logout", form={"csrf_token": token[::-1]}, max_redirects=0)
    assert wrong.status == 403, wrong.status
    header_only_wrong = page.request.post(
        "/ui/logout", headers={"X-CSRF-Token": "nope"}, max_redirects=0
    )
    assert header_only_wrong.status == 403, header_only_wrong.status

    # The JSON API takes the same cookie, but a state-changing call needs the header too.
    api = f"/api/v1/workspaces/{workspace.id}/runs/run_missing/cancel"
    assert page.request.post(api).status == 403
    assert page.request.post(api, headers={"X-CSRF-Token": token[::-1]}).status == 403
    assert page.request.post(api, headers={"X-CSRF-Token": token}).status == 404  # control

    # Still signed in: none of the refused posts did anything.
    page.goto("/ui/")
    page.locator("#workspace-name").wait_for()
    assert session_cookie(browser_context) is not None

    # The control: the very same post with the page's token signs out.
    ok = page.request.post("/ui/logout", form={"csrf_token": token}, max_redirects=0)
    assert ok.status in (302, 303), ok.status
    page.goto("/ui/")
    assert re.search(r"/ui/login", page.url), page.url


def test_another_workspaces_run_is_not_found(
    page: Page,
    watch: PageWatch,
    context: AppContext,
    server: LiveServer,
    workspace: Tenant,
    crew: Crew,
) -> None:
    watch.expect_console_error(r"status of 404")
    agent = crew.agent([{"text": "mine only"}])
    run_id = crew.start(agent)
    wait_until(
        lambda: crew.run(run_id)["status"] not in ("queued", "running"), 20, "the run to end"
    )
    assert crew.run(run_id)["status"] == "succeeded"
    api = f"/api/v1/workspaces/{workspace.id}/runs/{run_id}"
    paths = (f"/ui/runs/{run_id}", f"/ui/runs/{run_id}?replay=1", api, f"{api}/stream.jsonl")

    # The control: the owner's session opens every one of them.
    sign_in(page, workspace.api_key)
    for path in paths:
        assert status_of(page, path) == 200, path
    page.click("#logout")
    page.wait_for_url(re.compile(r"/ui/login"))

    other = make_tenant(context, server, "intruder")
    try:
        sign_in(page, other.api_key)
        # The run's own id under the intruder's workspace, too.
        stolen = f"/api/v1/workspaces/{other.id}/runs/{run_id}"
        for path in (*paths, stolen, f"{stolen}/stream.jsonl"):
            assert status_of(page, path) == 404, path
            assert "mine only" not in page.content()
    finally:
        other.client.close()
