"""Budgets and usage, end to end: a real run of a scripted agent stops at its agent's budget with
a model_error that says which; result.json, the run API and the CLI summary agree on the usage
the gateway recorded."""

from __future__ import annotations

import json

from actana.cli.runs import print_summary
from tests.integration.runs.conftest import run_row

SCRIPT = [
    {"tool_calls": [{"name": "bash", "args": {"command": "echo one"}}]},
    {"tool_calls": [{"name": "bash", "args": {"command": "echo two"}}]},
    {"text": "done"},
]


def _result_json(runner, final) -> dict:
    return json.loads((runner.run_dir(final) / "result.json").read_text())


def test_usage_is_summed_into_result_json_the_api_and_the_cli(runner, capsys):
    final = runner.wait(runner.start(runner.agent(SCRIPT))["id"])
    assert final["status"] == "succeeded", final
    row = run_row(runner.context, final["id"])
    usage = _result_json(runner, final)["usage"]
    assert usage == {
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "model_calls": 3,
    }
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert final["usage"] == usage
    # The stream's terminal line carries the runtime's own sum of the gateway's turns.
    terminal = runner.stored(final)[-1]
    assert terminal["usage"] == usage
    print_summary(final, "http://server")
    out = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal's width
    expected = (
        f"3 model call(s), {usage['input_tokens']} input + {usage['output_tokens']} output tokens"
    )
    assert expected in out, out


def test_a_run_stops_at_its_agents_model_call_budget(runner):
    agent = runner.agent(SCRIPT, max_model_calls=2)
    final = runner.wait(runner.start(agent)["id"])
    assert final["status"] == "failed"
    assert final["error"] == {
        "code": "model_error",
        "message": "the run used its budget of 2 model calls; the agent's max_model_calls sets it",
    }
    result = _result_json(runner, final)
    assert result["error"]["code"] == "model_error"
    assert result["usage"]["model_calls"] == 2
    assert final["usage"] == result["usage"]


def test_a_run_stops_at_its_agents_input_token_budget(runner):
    agent = runner.agent(SCRIPT, max_input_tokens=1)
    final = runner.wait(runner.start(agent)["id"])
    assert final["status"] == "failed"
    used = final["usage"]["input_tokens"]
    assert final["error"]["message"] == (
        f"the run used its budget of 1 input tokens ({used} used); "
        "the agent's max_input_tokens sets it"
    )
    assert final["usage"]["model_calls"] == 1
    steps = [line for line in runner.stored(final) if line["type"] == "step"]
    assert len(steps) == 2, "the first turn's tool call ran, then the second call was refused"


def test_the_agent_api_shows_and_clears_its_budgets(runner):
    t = runner.tenant
    agent = runner.agent(
        SCRIPT, max_model_calls=5, max_input_tokens=50_000, max_output_tokens=4_000
    )
    body = t.client.get(t.path(f"/agents/{agent}")).json()
    assert (body["max_model_calls"], body["max_input_tokens"], body["max_output_tokens"]) == (
        5,
        50_000,
        4_000,
    )
    r = t.client.patch(t.path(f"/agents/{agent}"), json={"max_input_tokens": None})
    assert r.status_code == 200, r.text
    assert r.json()["max_input_tokens"] is None
    assert r.json()["max_model_calls"] == 5
    bad = t.client.patch(t.path(f"/agents/{agent}"), json={"max_output_tokens": 0})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "max_output_tokens"
