"""Timeouts and cancel end a run within a second, through cleanup, with no process left behind.

The bash step starts three long sleeps, all findable in /proc by one unique marker: one in the
background, one in the background in a session of its own (`setsid`: out of reach of a process
group kill), and the step's own shell exec'ed into a sleep whose argv[0] is the marker. The
other two carry the marker in their environment.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from actana.runs.chain import verify_run_dir
from tests.conftest import make_tenant
from tests.integration.runs.conftest import (
    Runner,
    assert_no_process_left,
    assert_well_formed,
    epoch_ms,
    read_to_terminal,
    run_row,
    running_sleepers,
    sleepers_script,
    until_step_running,
)

TIMEOUT_SEC = 2


def _check_stream(runner: Runner, run: dict[str, Any], seen: list[dict[str, Any]]) -> None:
    stored = runner.stored(run)
    assert seen == stored, "the live lines differ from the stored stream"
    assert_well_formed(stored)
    report = verify_run_dir(runner.run_dir(run))
    assert report.ok, report.reason


def test_timeout_ends_the_run_at_its_deadline_and_kills_every_process(runner):
    marker = f"actana-timeout-{secrets.token_hex(8)}"
    agent = runner.agent(sleepers_script(marker), timeout_sec=TIMEOUT_SEC)
    run = runner.start(agent)
    lines = runner.events(run["id"])
    seen: list[dict[str, Any]] = []
    until_step_running(lines, seen)
    assert len(running_sleepers(marker)) == 3

    terminal = read_to_terminal(lines, seen)
    assert_no_process_left(marker, within=1.0)
    assert terminal["type"] == "error", terminal
    assert terminal["code"] == "timeout", terminal

    row = run_row(runner.context, run["id"])
    assert row.status == "timeout"
    assert row.error_code == "timeout"
    assert row.deadline_at is not None
    assert row.started_at is not None
    assert row.ended_at is not None
    deadline = epoch_ms(row.deadline_at)
    assert abs(deadline - epoch_ms(row.started_at) - TIMEOUT_SEC * 1000) <= 1
    late = terminal["ts"] - deadline
    assert -100 <= late <= 1000, f"terminal line {late} ms after the deadline"
    ended = epoch_ms(row.ended_at) - deadline
    assert -100 <= ended <= 1000, f"ended_at {ended} ms after the deadline"

    final = runner.tenant.client.get(runner.tenant.path(f"/runs/{run['id']}")).json()
    assert final["status"] == "timeout"
    assert final["error"]["code"] == "timeout"
    _check_stream(runner, final, seen)


def test_cancel_of_a_running_run_ends_it_within_a_second(runner):
    marker = f"actana-cancel-{secrets.token_hex(8)}"
    agent = runner.agent(sleepers_script(marker), timeout_sec=30)
    run = runner.start(agent)
    lines = runner.events(run["id"])
    seen: list[dict[str, Any]] = []
    until_step_running(lines, seen)
    assert len(running_sleepers(marker)) == 3

    t = runner.tenant
    asked = time.time_ns() // 1_000_000
    response = t.client.post(t.path(f"/runs/{run['id']}/cancel"))
    assert response.status_code == 200, response.text
    assert response.json()["cancel_requested"] is True

    terminal = read_to_terminal(lines, seen)
    assert_no_process_left(marker, within=1.0)
    assert terminal["type"] == "error", terminal
    assert terminal["code"] == "cancelled", terminal
    took = terminal["ts"] - asked
    assert took <= 1000, f"the run ended {took} ms after the cancel request"

    final = t.client.get(t.path(f"/runs/{run['id']}")).json()
    assert final["status"] == "cancelled"
    assert final["error"]["code"] == "cancelled"
    assert epoch_ms(run_row(runner.context, run["id"]).ended_at) - asked <= 1000
    _check_stream(runner, final, seen)

    again = t.client.post(t.path(f"/runs/{run['id']}/cancel"))
    assert again.status_code == 409, again.text


def test_cancel_of_a_queued_run(context, live_server):
    # No workers on this server: the run stays queued until it is cancelled.
    runner = Runner(context, make_tenant(context, live_server, "queued"))
    t = runner.tenant
    try:
        agent = runner.agent([{"text": "never runs"}])
        run = runner.start(agent)
        assert run["status"] == "queued"

        response = t.client.post(t.path(f"/runs/{run['id']}/cancel"))
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"

        lines = list(runner.events(run["id"]))
        assert len(lines) == 1, f"a run cancelled in the queue has one line, got {lines}"
        (only,) = lines
        assert only["type"] == "error"
        assert only["code"] == "cancelled"
        assert only["seq"] == 0
        assert only["run"] == run["id"]
        assert runner.stored(run) == lines
        report = verify_run_dir(runner.run_dir(run))
        assert report.ok, report.reason

        final = t.client.get(t.path(f"/runs/{run['id']}")).json()
        assert final["status"] == "cancelled"
        assert final["error"]["code"] == "cancelled"
        assert final["started_at"] is None

        again = t.client.post(t.path(f"/runs/{run['id']}/cancel"))
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "conflict", again.text
    finally:
        t.client.close()
