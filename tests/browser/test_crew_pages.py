"""The crew pages' script (static/crew.js) in a real browser: the model endpoint "Test" button,
the MCP server "Discover tools" button, "Add variable" / "Add header" rows and the agent's "↑"
ordering, each followed through to what the server saved or answered.

The success path of discovery uses the same real MCP server as tests/integration/mcp
(`mcp-server-time` behind `mcp-proxy`, a header-checking gate in front); the failures point at a
loopback port nobody listens on, so nothing here needs the network.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import WAIT_MS, Crew, PageWatch
from tests.conftest import Tenant
from tests.integration.mcp import conftest as mcp_fixtures
from tests.integration.mcp.conftest import GatedServer, free_port

# The real MCP server fixtures, shared with the MCP integration tests (session-scoped server).
time_server_url = mcp_fixtures.time_server_url
gated = mcp_fixtures.gated

REPLY = "pong from the script"


def create(workspace: Tenant, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    r = workspace.client.post(workspace.path(f"/{kind}"), json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def fetch(workspace: Tenant, kind: str, item_id: str) -> dict[str, Any]:
    r = workspace.client.get(workspace.path(f"/{kind}/{item_id}"))
    assert r.status_code == 200, r.text
    return dict(r.json())


def saved_id(page: Page, kind: str, prefix: str) -> str:
    """The id in the URL a successful create redirects to (/ui/KIND/PREFIX_...)."""
    page.wait_for_url(re.compile(rf"/ui/{kind}/{prefix}_[A-Za-z0-9_-]+$"))
    return page.url.rsplit("/", 1)[1]


def click_and_wait(button: Locator, result: Locator) -> None:
    """Click a crew.js button and wait for its verdict (or its error) to replace the spinner."""
    button.click()
    expect(result.locator(".verdict, .flash-error")).to_be_visible(timeout=WAIT_MS)
    expect(button).to_be_enabled()


# --- "Test" on a model endpoint ----------------------------------------------------------------


def test_endpoint_test_button_shows_the_scripted_reply(signed_in: Page, workspace: Tenant) -> None:
    page = signed_in
    endpoint = create(
        workspace,
        "model-endpoints",
        {"name": "offline", "provider": "scripted", "script": [{"text": REPLY}]},
    )
    page.goto(f"/ui/model-endpoints/{endpoint['id']}")
    result = page.locator("#endpoint-test-result")
    assert (result.text_content() or "").strip() == ""

    click_and_wait(page.locator("#endpoint-test"), result)
    expect(result.locator(".verdict .badge")).to_have_text("ok")
    expect(result.locator(".verdict .badge")).to_have_class(re.compile(r"\bbadge-ok\b"))
    expect(result.locator(".verdict")).to_contain_text(
        re.compile(r"scripted .* answered in \d+ ms")
    )
    expect(result.locator("pre.block")).to_have_text(REPLY)


def test_endpoint_test_button_says_why_an_unreachable_server_failed(
    signed_in: Page, workspace: Tenant
) -> None:
    page = signed_in
    port = free_port()  # closed again: nothing listens there
    endpoint = create(
        workspace,
        "model-endpoints",
        {
            "name": "local-llm",
            "provider": "openai_compatible",
            "model": "tiny",
            "base_url": f"http://127.0.0.1:{port}/v1",
        },
    )
    page.goto(f"/ui/model-endpoints/{endpoint['id']}")
    result = page.locator("#endpoint-test-result")

    click_and_wait(page.locator("#endpoint-test"), result)
    expect(result.locator(".verdict .badge")).to_have_text("failed")
    expect(result.locator(".verdict .badge")).to_have_class(re.compile(r"\bbadge-bad\b"))
    expect(result.locator("pre.step-error")).to_contain_text(
        f"could not reach the model server at http://127.0.0.1:{port}"
    )


def test_endpoint_test_button_reports_an_endpoint_deleted_meanwhile(
    signed_in: Page, workspace: Tenant, watch: PageWatch
) -> None:
    """The API answering an error (not a failed check) shows the API's message, not a verdict."""
    watch.expect_console_error(r"status of 404 .*/test\)$")
    page = signed_in
    endpoint = create(
        workspace,
        "model-endpoints",
        {"name": "doomed", "provider": "scripted", "script": [{"text": REPLY}]},
    )
    page.goto(f"/ui/model-endpoints/{endpoint['id']}")
    gone = workspace.client.delete(workspace.path(f"/model-endpoints/{endpoint['id']}"))
    assert gone.status_code == 204, gone.text

    result = page.locator("#endpoint-test-result")
    click_and_wait(page.locator("#endpoint-test"), result)
    expect(result.locator(".flash-error")).to_have_text(
        f"no model endpoint '{endpoint['id']}' in this workspace"
    )
    assert result.locator(".verdict").count() == 0


# --- "Discover tools" on an MCP server ---------------------------------------------------------


def test_discover_on_an_unreachable_server_says_so(signed_in: Page, workspace: Tenant) -> None:
    page = signed_in
    url = f"http://127.0.0.1:{free_port()}/mcp"
    server = create(workspace, "mcp-servers", {"name": "gone", "transport": "http", "url": url})
    page.goto(f"/ui/mcp-servers/{server['id']}")
    result = page.locator("#mcp-discover-result")

    click_and_wait(page.locator("#mcp-discover"), result)
    expect(result.locator(".verdict .badge")).to_have_text("failed")
    expect(result.locator(".verdict")).to_contain_text(re.compile(r"unreachable after \d+ ms"))
    expect(result.locator("pre.step-error")).to_contain_text("'gone' is unreachable")
    assert result.locator("ul.tool-list").count() == 0


def test_mcp_form_with_an_added_header_row_then_discover_lists_the_tools(
    signed_in: Page, workspace: Tenant, gated: GatedServer
) -> None:
    """The credential typed into a row that "Add header" made is saved and used: the gate in
    front of the real server refuses any request without it."""
    page = signed_in
    page.goto("/ui/mcp-servers/new")
    stdio = page.locator('fieldset.transport-fields[data-transport="stdio"]')
    http = page.locator('fieldset.transport-fields[data-transport="http"]')
    expect(stdio).to_be_visible()
    expect(http).to_be_hidden()
    page.fill("#name", "time")
    page.select_option("#transport", "http")
    expect(http).to_be_visible()
    expect(stdio).to_be_hidden()
    page.fill("#url", gated.url)

    rows = page.locator("#headers-table tr.header-row")
    expect(rows).to_have_count(2)
    page.fill('[name="headers.0.name"]', "X-Trace")
    page.fill('[name="headers.0.value"]', "from-row-0")
    page.click("#add-header")
    expect(rows).to_have_count(3)
    added = rows.nth(2)
    assert added.get_attribute("data-row") == "2"
    expect(added.locator('[name="headers.2.name"]')).to_be_focused()
    page.fill('[name="headers.2.name"]', "Authorization")
    page.fill('[name="headers.2.value"]', f"Bearer {gated.canary}")
    page.click("#mcp-form button[type=submit]")
    server_id = saved_id(page, "mcp-servers", "mcp")

    saved = fetch(workspace, "mcp-servers", server_id)
    assert saved["transport"] == "http"
    assert sorted(saved["headers_set"]) == ["Authorization", "X-Trace"]

    result = page.locator("#mcp-discover-result")
    click_and_wait(page.locator("#mcp-discover"), result)
    expect(result.locator(".verdict .badge")).to_have_text("ok")
    expect(result.locator(".verdict")).to_contain_text(re.compile(r"mcp-time .*lists \d+ tool"))
    tools = result.locator("ul.tool-list li code").all_text_contents()
    assert {"get_current_time", "convert_time"} <= set(tools), tools
    assert gated.saw_canary()
    assert any(h.get("x-trace") == "from-row-0" for h in gated.gate.headers_seen())
    assert gated.canary not in page.content()  # write-only: never sent back to the page


# --- "Add variable" on an environment ----------------------------------------------------------


def test_add_variable_rows_are_saved_in_order(signed_in: Page, workspace: Tenant) -> None:
    page = signed_in
    page.goto("/ui/environments/new")
    rows = page.locator("#variables-table tr.var-row")
    expect(rows).to_have_count(2)
    page.fill("#name", "build-env")
    page.fill('[name="variables.0.name"]', "REGION")
    page.fill('[name="variables.0.value"]', "eu-west")
    page.fill('[name="variables.1.name"]', "DB_PASSWORD")
    page.fill('[name="variables.1.value"]', "hunter2-secret")
    page.check('[name="variables.1.secret"]')

    page.click("#add-variable")
    expect(rows).to_have_count(3)
    # A copy of the last row, renumbered and emptied: nothing of DB_PASSWORD comes along.
    added = rows.nth(2)
    assert added.get_attribute("data-row") == "2"
    expect(added.locator('[name="variables.2.name"]')).to_have_value("")
    expect(added.locator('[name="variables.2.value"]')).to_have_value("")
    expect(added.locator('[name="variables.2.secret"]')).not_to_be_checked()
    expect(added.locator('[name="variables.2.name"]')).to_be_focused()
    page.fill('[name="variables.2.name"]', "LOG_LEVEL")
    page.fill('[name="variables.2.value"]', "debug")
    page.click("#add-variable")  # a fourth row left blank is skipped on save
    expect(rows).to_have_count(4)

    page.click("#environment-form button[type=submit]")
    environment_id = saved_id(page, "environments", "env")
    variables = fetch(workspace, "environments", environment_id)["variables"]
    assert variables == [
        {"name": "REGION", "secret": False, "value": "eu-west", "value_set": True},
        {"name": "DB_PASSWORD", "secret": True, "value": None, "value_set": True},
        {"name": "LOG_LEVEL", "secret": False, "value": "debug", "value_set": True},
    ]
    assert "hunter2-secret" not in page.content()
    names = page.locator('#variables-table input[name$=".name"]')
    expect(names.nth(2)).to_have_value("LOG_LEVEL")  # the saved page lists it too


# --- "↑" on an agent's MCP servers -------------------------------------------------------------


def test_move_up_reorders_the_agents_mcp_servers(
    signed_in: Page, workspace: Tenant, crew: Crew
) -> None:
    page = signed_in
    first, second, third = (
        create(workspace, "mcp-servers", {"name": n, "transport": "stdio", "command": "true"})["id"]
        for n in ("first", "second", "third")
    )
    agent = crew.agent([{"text": "ok"}], name="ordered", mcp_server_ids=[first, second, third])
    page.goto(f"/ui/agents/{agent}")
    items = page.locator("#mcp_server_ids-list > li")

    def order() -> list[str]:
        return [item.get_attribute("data-id") or "" for item in items.all()]

    assert order() == [first, second, third]
    items.nth(2).locator(".move-up").click()  # third above second
    assert order() == [first, third, second]
    items.nth(1).locator(".move-up").click()  # third above first
    assert order() == [third, first, second]
    items.nth(0).locator(".move-up").click()  # already first: stays
    assert order() == [third, first, second]

    # The save redirects to this same URL: the flash is what tells the new page apart.
    page.click("#agent-form button[type=submit]")
    page.locator("#flashes .flash-ok", has_text="Agent saved.").wait_for()
    assert fetch(workspace, "agents", agent)["mcp_server_ids"] == [third, first, second]
    assert order() == [third, first, second]  # the saved page lists them in the new order
