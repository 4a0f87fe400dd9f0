"""A run keeps the model endpoint its agent had when it started: pointing the agent at another
endpoint while the run is under way changes the next runs, not this one."""

from __future__ import annotations

from tests.integration.runs.conftest import Runner


def _scripted_endpoint(runner: Runner, name: str, script: list[dict]) -> str:
    t = runner.tenant
    made = t.client.post(
        t.path("/model-endpoints"), json={"name": name, "provider": "scripted", "script": script}
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def test_changing_the_agents_endpoint_mid_run_does_not_change_the_runs_model(runner):
    first = [
        {"tool_calls": [{"name": "bash", "args": {"command": "sleep 1"}}]},
        {"text": "answered by the first endpoint"},
    ]
    agent = runner.agent(first)
    other = _scripted_endpoint(runner, "other", [{"text": "answered by the other endpoint"}])
    run = runner.start(agent)

    t = runner.tenant
    lines = runner.events(run["id"])
    for line in lines:  # the first model call is made: the bash step is running
        if line["type"] == "step" and line["status"] == "running":
            break
    moved = t.client.patch(t.path(f"/agents/{agent}"), json={"model_endpoint_id": other})
    assert moved.status_code == 200, moved.text
    final = [line for line in lines if line["type"] in ("result", "error")][-1]
    assert final["type"] == "result", final
    assert final["message"] == "answered by the first endpoint"

    again = runner.wait(runner.start(agent)["id"])
    assert again["message"] == "answered by the other endpoint", again
