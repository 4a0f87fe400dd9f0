"""The runs list in a real browser: the filter form narrows the rows, the page links walk the
pages with the filters kept, and a running run's row turns succeeded in place (runs.js), with no
reload.

The server-side rules of each filter are tested over plain HTTP (tests/integration/web); what is
proven here is the page as a person uses it: the form's own fields (selects, `datetime-local`,
search) produce a query the server reads the intended way, and the script keeps rows current.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, Request, expect
from sqlalchemy import update

from actana.api.context import AppContext
from actana.db.models import Run
from actana.runs import service
from actana.runs.queue import TERMINAL
from actana.web.runs_pages import PAGE_SIZE
from tests.browser.conftest import (
    WAIT_MS,
    Crew,
    gate_command,
    release,
    sandbox_workspace,
    wait_until,
)
from tests.conftest import Tenant

ROW = "#runs-table tr.run-row"
OK_SCRIPT: list[dict[str, Any]] = [{"text": "done"}]
# A tool call and then nothing: the agent asks for a second turn the script does not have,
# so the run fails (a real failed run, not a status written into the database).
FAILING_SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "bash", "args": {"command": "true"}}]}
]


def row_ids(page: Page) -> list[str]:
    return [row.get_attribute("data-run-id") or "" for row in page.locator(ROW).all()]


def submit_filters(page: Page, **expected: str) -> None:
    """Click Filter and wait for the page whose query is exactly `expected` (blank fields are
    dropped by parse_qs, as they mean "any"). Each call must change the query: the current page
    would match at once."""
    page.click("#filters button[type=submit]")
    want = {key: [value] for key, value in expected.items()}
    page.wait_for_url(lambda url: parse_qs(urlsplit(url).query) == want)


def wait_ended(crew: Crew, run_id: str) -> str:
    """The run's final status, once it has one."""

    def ended() -> str | None:
        status = str(crew.run(run_id)["status"])
        return status if status in TERMINAL else None

    return str(wait_until(ended, 30, f"{run_id} to end"))


def set_created_at(context: AppContext, run_id: str, at: datetime) -> None:
    """The filter's fields have minute precision and runs start seconds apart: move each run to
    a time of its own so that a range can tell them apart."""
    with context.database.session() as session:
        session.execute(update(Run).where(Run.id == run_id).values(created_at=at))


def test_filters_narrow_the_rows(signed_in: Page, crew: Crew, context: AppContext) -> None:
    page = signed_in
    alpha = crew.agent(OK_SCRIPT, name="alpha")
    beta = crew.agent(FAILING_SCRIPT, name="beta")
    sales = crew.start(alpha, "Summarise the quarterly SALES figures")
    readme = crew.start(alpha, "Translate the README into French")
    invoices = crew.start(beta, "Count the invoices in sales.csv")
    assert [wait_ended(crew, r) for r in (sales, readme, invoices)] == [
        "succeeded",
        "succeeded",
        "failed",
    ]
    set_created_at(context, sales, datetime(2025, 1, 10, 9, 0, tzinfo=UTC))
    set_created_at(context, readme, datetime(2025, 1, 10, 11, 30, tzinfo=UTC))
    set_created_at(context, invoices, datetime(2025, 1, 11, 8, 0, tzinfo=UTC))

    page.goto("/ui/runs")
    assert row_ids(page) == [invoices, readme, sales]  # newest first, nothing filtered

    page.select_option("#f-status", "failed")
    submit_filters(page, status="failed")
    assert row_ids(page) == [invoices]
    assert page.locator(f"{ROW} .run-status .badge").all_text_contents() == ["failed"]
    assert page.input_value("#f-status") == "failed"  # the form shows what it filters by

    page.select_option("#f-status", "")
    page.select_option("#f-agent", alpha)
    submit_filters(page, agent=alpha)
    assert row_ids(page) == [readme, sales]

    # Case-insensitive text, combined with the agent: "sales" is in beta's prompt too.
    page.fill("#f-q", "sales")
    submit_filters(page, agent=alpha, q="sales")
    assert row_ids(page) == [sales]
    assert page.input_value("#f-q") == "sales"

    page.locator("#filters a.button", has_text="Clear").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/ui/runs" and not urlsplit(url).query)
    assert row_ids(page) == [invoices, readme, sales]
    assert page.input_value("#f-agent") == ""

    # The datetime-local fields: from inclusive, to exclusive, both read as UTC.
    page.fill("#f-from", "2025-01-10T09:01")
    page.fill("#f-to", "2025-01-11T08:00")
    submit_filters(page, **{"from": "2025-01-10T09:01", "to": "2025-01-11T08:00"})
    assert row_ids(page) == [readme]
    assert page.input_value("#f-from") == "2025-01-10T09:01"
    assert page.input_value("#f-to") == "2025-01-11T08:00"

    page.goto("/ui/runs")
    page.select_option("#f-status", "succeeded")
    page.select_option("#f-agent", beta)
    submit_filters(page, status="succeeded", agent=beta)
    assert row_ids(page) == []
    expect(page.locator("#runs-empty")).to_contain_text("No run matches these filters")


def seed_finished_runs(
    context: AppContext, workspace: Tenant, agent_id: str, prompts: list[str], start: datetime
) -> list[str]:
    """Finished runs, one minute apart from `start`, written through the service that queues a
    run but already ended, so that no worker picks them up: the list only reads these rows, and
    running thirty real runs would spend a minute on what this test is not about."""
    ids = []
    with context.database.session() as session:
        for n, prompt in enumerate(prompts):
            run = service.create_run(
                context,
                session,
                workspace.id,
                agent_id,
                prompt,
                run_id=service.new_run_id(),
                input_files=[],
            )
            run.status = "succeeded"
            run.created_at = run.started_at = start + timedelta(minutes=n)
            run.ended_at = run.started_at + timedelta(seconds=2)
            ids.append(run.id)
    return ids


def test_pagination_walks_the_pages_and_keeps_the_filter(
    signed_in: Page, crew: Crew, context: AppContext, workspace: Tenant
) -> None:
    page = signed_in
    alpha = crew.agent(OK_SCRIPT, name="alpha")
    beta = crew.agent(OK_SCRIPT, name="beta")
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    prompts = [f"job {n:02d}" for n in range(PAGE_SIZE + 2)]
    alpha_runs = seed_finished_runs(context, workspace, alpha, prompts, start)
    # beta's runs sit between alpha's in time: a page that ignored the filter would show them.
    seed_finished_runs(context, workspace, beta, ["other 1", "other 2"], start)
    newest_first = alpha_runs[::-1]

    page.goto("/ui/runs")
    page.select_option("#f-agent", alpha)
    submit_filters(page, agent=alpha)
    assert row_ids(page) == newest_first[:PAGE_SIZE]
    expect(page.locator("#pagination")).to_contain_text(f"{PAGE_SIZE + 2} runs · page 1 of 2")
    assert page.locator("#page-prev").count() == 0

    page.click("#page-next")
    page.wait_for_url(
        lambda url: parse_qs(urlsplit(url).query) == {"agent": [alpha], "page": ["2"]}
    )
    assert row_ids(page) == newest_first[PAGE_SIZE:]
    expect(page.locator("#pagination")).to_contain_text("page 2 of 2")
    assert page.locator("#page-next").count() == 0
    assert page.input_value("#f-agent") == alpha

    page.click("#page-prev")
    page.wait_for_url(
        lambda url: parse_qs(urlsplit(url).query) == {"agent": [alpha], "page": ["1"]}
    )
    assert row_ids(page) == newest_first[:PAGE_SIZE]


GATED_SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "bash", "args": {"command": gate_command()}}]},
    {"text": "ok"},
]
CELLS = ("run-status", "run-started", "run-duration", "run-rounds", "run-tokens")


def start_gated_run(crew: Crew, context: AppContext) -> tuple[str, Path]:
    """A run held running in its first step until the test releases its workspace's gate."""
    run_id = crew.start(crew.agent(GATED_SCRIPT, name="gated"), "wait for the test")
    workspace = sandbox_workspace(context, run_id)
    wait_until(lambda: crew.run(run_id)["status"] == "running", 20, "the run to be running")
    return run_id, workspace


def cells(page: Page, run_id: str) -> dict[str, str]:
    row = page.locator(f'{ROW}[data-run-id="{run_id}"]')
    return {name: (row.locator(f".{name}").text_content() or "").strip() for name in CELLS}


def release_and_watch(page: Page, run_id: str, workspace: Path) -> dict[str, str]:
    """Release the run with its row on screen; its cells once the badge says succeeded, proven
    changed in this very document (a reload would drop the marker)."""
    row = page.locator(f'{ROW}[data-run-id="{run_id}"]')
    badge = row.locator(".run-status .badge")
    page.evaluate("window.__sameDocument = true")
    release(workspace)
    expect(badge).to_have_text("succeeded", timeout=WAIT_MS)
    expect(badge).to_have_class(re.compile(r"\bbadge-succeeded\b"))
    assert row.get_attribute("data-status") == "succeeded"
    assert page.evaluate("window.__sameDocument === true")
    return cells(page, run_id)


def test_a_running_row_turns_succeeded_without_a_reload(
    signed_in: Page, crew: Crew, context: AppContext
) -> None:
    page = signed_in
    done = crew.start(crew.agent(OK_SCRIPT, name="quick"))
    assert wait_ended(crew, done) == "succeeded"
    run_id, workspace = start_gated_run(crew, context)
    polled: list[str] = []

    def note(request: Request) -> None:
        if "/api/v1/" in request.url:
            polled.append(request.url)

    page.on("request", note)
    page.goto("/ui/runs")
    before = cells(page, run_id)
    assert before["run-status"] == "running"
    assert before["run-duration"] == "\u2013"  # no duration before the end

    live = release_and_watch(page, run_id, workspace)
    final = crew.run(run_id)
    assert final["status"] == "succeeded"
    assert live["run-rounds"] == str(final["rounds"])
    usage = final["usage"]
    assert live["run-tokens"] == f"{usage['input_tokens']} / {usage['output_tokens']}"
    assert re.fullmatch(r"\d+ ms|\d+\.\d s", live["run-duration"]), live
    # Only the unfinished row was polled; the finished one was left alone.
    assert any(url.endswith(f"/runs/{run_id}") for url in polled), polled
    assert not any(done in url for url in polled), polled
    # What the script wrote reads as the server renders it, the duration included.
    page.reload()
    assert cells(page, run_id) == live


def test_a_long_runs_live_duration_reads_as_after_a_reload(
    signed_in: Page, crew: Crew, context: AppContext
) -> None:
    page = signed_in
    run_id, workspace = start_gated_run(crew, context)
    # Pretend it started 75 minutes ago: the worker set started_at once, at the start, and
    # the duration is ended_at - started_at. (A real 75-minute run is out of the question.)
    with context.database.session() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(started_at=datetime.now(UTC) - timedelta(minutes=75))
        )
    page.goto("/ui/runs")
    live = release_and_watch(page, run_id, workspace)
    page.reload()
    assert live["run-duration"] == cells(page, run_id)["run-duration"]
    assert live["run-duration"] == "1 h 15 min", live
