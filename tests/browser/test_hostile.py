"""Everything from a sandbox is hostile and must render inert: tool output, model text, a failed
step's error and an output file's name carry markup that would run if it reached the DOM as
HTML. The page is watched from before its first navigation (dialogs, console errors such as CSP
violations, script errors) by the `page` fixture; here it is also checked explicitly, live and
in replay, along with the escaped text being on the page and no injected element existing."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from actana.api.context import AppContext
from tests.browser.conftest import (
    Crew,
    PageWatch,
    gate_command,
    release,
    sandbox_workspace,
)

SCRIPT_TAG = "<script>alert(1)</script>"
IMG_TAG = "<img src=x onerror=alert(2)>"
FILE_NAME = '"><svg onload=alert(3)>.txt'
MODEL_TEXT = "Finished <script>alert(4)</script> and <img src=x onerror=alert(5)> for you."
ERROR_PATH = "<img src=x onerror=alert(6)>"
PRINT = (
    f"printf '%s\\n' '{SCRIPT_TAG}' '{IMG_TAG}'; "
    f"printf 'inert\\n' > 'assets/\"><svg onload=alert(3)>.txt'"
)
SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "bash", "args": {"command": PRINT}}]},
    {"tool_calls": [{"name": "read_file", "args": {"path": ERROR_PATH}}]},
    {"tool_calls": [{"name": "bash", "args": {"command": gate_command()}}]},
    {"text": MODEL_TEXT},
]
STEP = "#steps tbody tr.step[data-step-id]"
INJECTED = "script:not([src]), img[src=x], svg, [onerror], [onload]"


def assert_inert(page: Page, watch: PageWatch, *texts: str) -> None:
    body = page.evaluate("document.body.textContent")
    for text in texts:
        assert text in body, f"{text!r} is not shown as text"
    assert page.locator(INJECTED).count() == 0, page.locator(INJECTED).evaluate_all(
        "els => els.map(e => e.outerHTML)"
    )
    assert watch.problems() == []


def test_hostile_output_renders_inert(
    page: Page, watch: PageWatch, signed_in: Page, crew: Crew, context: AppContext
) -> None:
    agent = crew.agent(SCRIPT, name="hostile")
    run_id = crew.start(agent, prompt=f"say {SCRIPT_TAG}")
    page.goto(f"/ui/runs/{run_id}")

    # Live, while the gated step holds the run: the hostile output arrived through the stream.
    page.locator(f"{STEP}[data-status=running]").wait_for()
    page.locator(f"{STEP}[data-status=failed]").wait_for()
    assert_inert(page, watch, SCRIPT_TAG, IMG_TAG, ERROR_PATH)

    release(sandbox_workspace(context, run_id))
    page.locator("#run[data-status=succeeded]").wait_for()
    page.locator("#final-message").filter(has_text="Finished").wait_for()
    names = page.locator("#output-files li.output-file a.download").all_text_contents()
    assert len(names) == 1, names
    # The asset rules may have sanitised the stored name; either way it shows as plain text.
    stored = crew_file_name(crew, run_id)
    assert names[0].strip() == stored
    assert_inert(page, watch, SCRIPT_TAG, IMG_TAG, MODEL_TEXT, stored)

    # The same in replay.
    page.goto(f"/ui/runs/{run_id}?replay=1")
    page.click("#jump-end")
    page.locator("#run[data-status=succeeded]").wait_for()
    page.locator("#final-message").filter(has_text="Finished").wait_for()
    assert_inert(page, watch, SCRIPT_TAG, IMG_TAG, ERROR_PATH, MODEL_TEXT)


def crew_file_name(crew: Crew, run_id: str) -> str:
    files = crew.run(run_id)["output_files"]
    assert len(files) == 1, files
    return str(files[0]["name"])
