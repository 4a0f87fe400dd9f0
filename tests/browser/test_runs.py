"""A run from the browser, end to end: started from the New run page with a file, watched live,
finished, its output downloaded, replayed; and a long run cancelled from its page.

"Live" is proven, not assumed: the run's middle step waits for a file the test creates in the
sandbox's workspace, so the page must show that step running, in place, before the run can end.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import FilePayload, Page

from actana.api.context import AppContext
from tests.browser.conftest import (
    Crew,
    gate_command,
    release,
    sandbox_workspace,
    wait_until,
)

INPUT = b"region,sales\nnorth,120\nsouth,95\n"
REPORT = "# Sales\n\nnorth leads with 120; south follows with 95.\n"
FINAL = "Done: report.md summarises sales.csv."
SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "read_file", "args": {"path": "assets/sales.csv"}}]},
    {"tool_calls": [{"name": "bash", "args": {"command": gate_command()}}]},
    {
        "tool_calls": [
            {"name": "write_file", "args": {"path": "assets/report.md", "content": REPORT}}
        ]
    },
    {"text": FINAL},
]
# Set to a path to save the screenshot of the finished run's page (docs/screenshot.png).
SCREENSHOT = os.environ.get("ACTANA_TEST_SCREENSHOT", "")

STEP = "#steps tbody tr.step[data-step-id]"


def run_id_of(page: Page) -> str:
    match = re.search(r"/ui/runs/(run_[A-Za-z0-9_-]+)", page.url)
    assert match, page.url
    return match.group(1)


def step_names(page: Page) -> list[str]:
    return page.locator(f"{STEP} .step-name").all_text_contents()


def wait_status(page: Page, status: str) -> None:
    page.locator(f"#run[data-status={status}]").wait_for()
    assert (page.locator("#run-status").text_content() or "").strip() == status


def save_screenshot(page: Page, run_id: str, path: str) -> None:
    """The finished run's whole page without the "queued" flash: header, phases, steps, final
    message and files (docs/screenshot.png)."""
    page.goto(f"/ui/runs/{run_id}")
    page.locator("#verify-badge[data-state=verified]").wait_for()
    page.locator("#final-message").filter(has_text=FINAL).wait_for()
    page.screenshot(path=path, full_page=True)


def test_start_watch_download_replay(
    signed_in: Page, crew: Crew, context: AppContext, tmp_path: Path
) -> None:
    page = signed_in
    agent = crew.agent(SCRIPT, name="analyst")
    page.click("#nav a[data-nav=new_run]")
    page.select_option("#agent", agent)
    page.fill("#prompt", "Summarise the attached sales figures into report.md")
    page.set_input_files(
        "#files", files=[FilePayload(name="sales.csv", mimeType="text/csv", buffer=INPUT)]
    )
    page.click("#new-run-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/runs/run_"))
    run_id = run_id_of(page)

    # Live: the gated step shows as running while the run is still running...
    running = page.locator(f"{STEP}[data-status=running]")
    running.wait_for()
    step_id = running.get_attribute("data-step-id")
    assert page.locator("#run").get_attribute("data-status") == "running"
    assert page.locator(f"{STEP}[data-status=succeeded]").count() == 1  # read_file, done
    # ...then, released, the same row (by step id) turns succeeded and the run finishes.
    release(sandbox_workspace(context, run_id))
    wait_status(page, "succeeded")
    row = page.locator(f'{STEP}[data-step-id="{step_id}"]')
    assert row.count() == 1
    assert row.get_attribute("data-status") == "succeeded"
    assert step_names(page) == ["read_file", "bash", "write_file"]
    assert "released" in (row.text_content() or "")
    assert "north,120" in (page.locator(STEP).first.text_content() or "")
    page.locator("#final-message").filter(has_text=FINAL).wait_for()
    page.locator("#verify-badge[data-state=verified]").wait_for()
    assert crew.run(run_id)["status"] == "succeeded"
    if SCREENSHOT:
        save_screenshot(page, run_id, SCREENSHOT)

    # The output file: listed with its size, downloaded as an attachment with its name.
    link = page.locator("#output-files li.output-file a.download", has_text="report.md")
    with page.expect_download() as caught:
        link.click()
    download = caught.value
    assert download.suggested_filename == "report.md"
    saved = tmp_path / "downloaded.md"
    download.save_as(saved)
    assert saved.read_text() == REPORT

    # The audit-trail links are there and serve the run's files.
    for link_id, name in (
        ("stream", "stream.jsonl"),
        ("steps", "steps.json"),
        ("result", "result.json"),
    ):
        href = page.locator(f"#link-{link_id}").get_attribute("href")
        assert href is not None
        assert href.endswith(f"/runs/{run_id}/{name}"), href
        response = page.request.get(href)
        assert response.status == 200, (name, response.status)

    # Replay: the same steps from the stored stream.
    live_steps = step_names(page)
    page.goto(f"/ui/runs/{run_id}?replay=1")
    page.click("#jump-end")
    wait_status(page, "succeeded")
    assert step_names(page) == live_steps
    page.locator("#final-message").filter(has_text=FINAL).wait_for()
    page.locator("#verify-badge[data-state=verified]").wait_for()


def test_cancel_a_long_run(signed_in: Page, crew: Crew) -> None:
    page = signed_in
    agent = crew.agent(
        [
            {"tool_calls": [{"name": "bash", "args": {"command": "sleep 60"}}]},
            {"text": "slept the whole minute"},
        ]
    )
    run_id = crew.start(agent)
    page.goto(f"/ui/runs/{run_id}")
    page.locator(f"{STEP}[data-status=running]").wait_for()
    page.click("#cancel-button")
    wait_status(page, "cancelled")
    assert page.locator("#cancel-button").is_hidden()
    assert wait_until(lambda: crew.run(run_id)["status"] == "cancelled", 10, "cancelled")
    assert "slept the whole minute" not in (page.locator("#content").text_content() or "")
