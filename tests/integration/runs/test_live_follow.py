"""Watching a run live: followers that join at the start, mid-run or from `?after=K` each get
every line exactly once, in order, with no gap, ending at the terminal line; SSE carries the
same lines as NDJSON."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.runs.conftest import Follower, Runner

STEPS = 4
SCRIPT = [
    *(
        {"tool_calls": [{"name": "bash", "args": {"command": f"sleep 0.3; echo step-{n}"}}]}
        for n in range(STEPS)
    ),
    {"text": "slept four times"},
]


def _stored_lines(runner: Runner, run: dict[str, Any]) -> list[str]:
    return (runner.run_dir(run) / "stream.jsonl").read_text().splitlines()


def _is_step_start(line: str) -> bool:
    event = json.loads(line)
    return event["type"] == "step" and event["status"] == "running"


def _parse_sse(frames: list[str]) -> list[tuple[str, str, str]]:
    """(id, event, data) of each frame; every frame must have exactly these three fields."""
    parsed = []
    for frame in frames:
        fields: dict[str, list[str]] = {}
        for row in frame.split("\n"):
            name, sep, value = row.partition(": ")
            assert sep, f"SSE row without 'name: value': {row!r}"
            fields.setdefault(name, []).append(value)
        assert sorted(fields) == ["data", "event", "id"], frame
        assert all(len(values) == 1 for values in fields.values()), frame
        parsed.append((fields["id"][0], fields["event"][0], fields["data"][0]))
    return parsed


def _assert_sse_matches(frames: list[str], expected: list[str]) -> None:
    parsed = _parse_sse(frames)
    assert [data for _, _, data in parsed] == expected, "SSE data lines differ from NDJSON"
    for frame_id, event, data in parsed:
        line = json.loads(data)
        assert frame_id == str(line["seq"]), (frame_id, data)
        assert event == line["type"], (event, data)


def test_followers_joining_at_any_point_get_every_line_once(runner):
    agent = runner.agent(SCRIPT)
    run = runner.start(agent)
    t = runner.tenant

    first = Follower(t, run["id"])
    sse = Follower(t, run["id"], sse=True)
    first.start()
    sse.start()

    # Join mid-run, driven by the first follower's progress: once it has seen a step start.
    seen = first.wait_for(lambda items: any(_is_step_start(i) for i in items))
    n = len(seen)
    second = Follower(t, run["id"])
    second.start()
    second.wait_for(lambda items: len(items) >= 1)
    status = t.client.get(t.path(f"/runs/{run['id']}")).json()["status"]
    assert status == "running", "the second follower should have joined a live run"

    # The third starts after a line that may not exist yet: it must wait for it, not skip.
    k = n + 1
    third = Follower(t, run["id"], after=k)
    third.start()

    got = {name: f.finish() for name, f in (("first", first), ("second", second), ("third", third))}
    frames = sse.finish()
    final = t.client.get(t.path(f"/runs/{run['id']}")).json()
    assert final["status"] == "succeeded", final
    stored = _stored_lines(runner, final)
    assert json.loads(stored[-1])["type"] == "result"
    assert len(stored) > k + 1 + 2 * STEPS, "the run should have many lines after K"

    assert got["first"] == stored, "the follower from the start differs from stream.jsonl"
    assert got["second"] == stored, "the follower that joined mid-run differs from stream.jsonl"
    assert got["third"] == stored[k + 1 :], f"?after={k} must give exactly lines {k + 1}..end"
    assert json.loads(got["third"][0])["seq"] == k + 1
    for f in (first, second, third):
        assert f.content_type.startswith("application/x-ndjson"), f.content_type
    assert sse.content_type.startswith("text/event-stream"), sse.content_type
    _assert_sse_matches(frames, stored)


def test_replay_after_the_end(runner):
    agent = runner.agent(
        [{"tool_calls": [{"name": "bash", "args": {"command": "echo x"}}]}, {"text": "ok"}]
    )
    run = runner.start(agent)
    final = runner.wait(run["id"])
    stored = _stored_lines(runner, final)
    t = runner.tenant
    for after, expected in ((None, stored), (-1, stored), (4, stored[5:]), (len(stored) - 1, [])):
        replay = Follower(t, run["id"], after=after)
        replay.start()
        assert replay.finish() == expected, f"replay with after={after}"
        sse = Follower(t, run["id"], after=after, sse=True)
        sse.start()
        _assert_sse_matches(sse.finish(), expected)
