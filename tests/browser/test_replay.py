"""Replay at the recorded pace: the page plays a stored stream back with the gaps between its
lines' timestamps, and a speed picked during a long gap applies to what is left of it.

Times are taken in the page itself (a MutationObserver installed before any of the page's own
scripts, stamping `performance.now()` when the step row changes), so the test's own latency
does not enter them. Only bounds with wide margins are asserted: at 1x the step cannot end
sooner than it did when recorded; at 10x it must end well before the recorded wait is over.
"""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Page

from tests.browser.conftest import WAIT_MS, Crew, wait_until

SLEEP_SEC = 2.5
FINAL = "slept and replayed"
SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "bash", "args": {"command": f"sleep {SLEEP_SEC}; echo awake"}}]},
    {"text": FINAL},
]
# Installed before the page's scripts run: the moments the bash row first shows as running and
# as succeeded, in the page's own clock.
STAMPS = """
window.__stamps = {};
new MutationObserver(function () {
  var row = document.querySelector("#steps tr.step");
  var status = row && row.getAttribute("data-status");
  if (status && !(status in window.__stamps)) {
    window.__stamps[status] = performance.now();
  }
}).observe(document, { subtree: true, childList: true, attributes: true });
"""


def recorded_gap_ms(crew: Crew, run_id: str) -> float:
    """How long the bash step took in the stored stream (its running line to its last line)."""
    tenant = crew.tenant
    text = tenant.client.get(tenant.path(f"/runs/{run_id}/stream.jsonl")).text
    steps = [line for line in map(json.loads, text.splitlines()) if line["type"] == "step"]
    running = next(line for line in steps if line["status"] == "running")
    done = next(line for line in steps if line["status"] == "succeeded")
    return float(done["ts"] - running["ts"])


def finished_run(crew: Crew) -> str:
    run_id = crew.start(crew.agent(SCRIPT, name="sleeper"))
    wait_until(lambda: crew.run(run_id)["status"] == "succeeded", 30, f"{run_id} to succeed")
    return run_id


def stamps(page: Page) -> dict[str, float]:
    page.locator("#steps tr.step[data-status=succeeded]").wait_for(timeout=WAIT_MS)
    page.locator("#stream-state").filter(has_text="replay ended").wait_for(timeout=WAIT_MS)
    assert FINAL in (page.locator("#final-message").text_content() or "")
    result: dict[str, float] = page.evaluate("window.__stamps")
    return result


def test_replay_keeps_the_recorded_gaps(signed_in: Page, crew: Crew) -> None:
    page = signed_in
    run_id = finished_run(crew)
    gap = recorded_gap_ms(crew, run_id)
    assert gap >= SLEEP_SEC * 1000 * 0.9  # the sleep is in the stream, or this proves nothing
    page.add_init_script(STAMPS)
    page.goto(f"/ui/runs/{run_id}?replay=1")
    seen = stamps(page)
    # Timers never fire early; a loaded machine only makes the replay slower.
    assert seen["succeeded"] - seen["running"] >= gap * 0.95, (seen, gap)


def test_a_faster_speed_applies_to_the_wait_in_progress(signed_in: Page, crew: Crew) -> None:
    page = signed_in
    run_id = finished_run(crew)
    gap = recorded_gap_ms(crew, run_id)
    page.add_init_script(STAMPS)
    page.goto(f"/ui/runs/{run_id}?replay=1")
    page.locator("#steps tr.step[data-status=running]").wait_for(timeout=WAIT_MS)
    page.select_option("#replay-speed", "10")
    seen = stamps(page)
    # At 10x what is left of the wait takes a tenth of it: far below the recorded gap (without
    # the change applying at once, the old 1x timer would still run the whole gap).
    assert seen["succeeded"] - seen["running"] < gap * 0.6, (seen, gap)
