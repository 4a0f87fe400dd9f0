"""Budgets per run: model calls, input tokens, output tokens; the agent's own limits, else the
deployment's. A call that would start past a budget is refused before any upstream call, and a
refused call is not counted."""

from __future__ import annotations

import pytest

from actana.protocol.payloads import Message, ModelRequest
from tests.integration.gateway.conftest import answer


def test_the_agent_caps_model_calls(gateway_run, planned):
    gateway_run.set_agent(max_model_calls=2)
    planned.plan = [answer(), answer()]
    assert gateway_run.call()[-1]["type"] == "turn"
    assert gateway_run.call()[-1]["type"] == "turn"
    lines = gateway_run.call()
    assert len(planned.attempts) == 2
    assert lines == [
        {
            "type": "error",
            "code": "model_error",
            "message": "the run used its budget of 2 model calls; "
            "the agent's max_model_calls sets it",
        }
    ]
    assert gateway_run.run_row().model_calls == 2


@pytest.mark.parametrize(
    ("field", "what", "usage"),
    [
        ("max_input_tokens", "input tokens", (60, 1)),
        ("max_output_tokens", "output tokens", (1, 60)),
    ],
)
def test_the_agent_caps_tokens(gateway_run, planned, field, what, usage):
    gateway_run.set_agent(**{field: 100})
    planned.plan = [answer(usage=usage), answer(usage=usage)]
    gateway_run.call()
    # 60 of 100 used: the next call may start (a budget is checked before a call, so the last
    # call may overshoot it: there is no knowing in advance what a call will use).
    assert gateway_run.call()[-1]["type"] == "turn"
    lines = gateway_run.call()
    assert len(planned.attempts) == 2
    assert lines[-1]["message"] == (
        f"the run used its budget of 100 {what} (120 used); the agent's {field} sets it"
    )
    row = gateway_run.run_row()
    assert (row.model_calls, row.input_tokens, row.output_tokens) == (
        2,
        2 * usage[0],
        2 * usage[1],
    )


@pytest.fixture
def settings(settings):
    return settings.model_copy(
        update={
            "max_model_calls_per_run": 3,
            "max_input_tokens_per_run": 25,
            "max_output_tokens_per_run": 1000,
        }
    )


def test_the_deployment_defaults_apply_when_the_agent_sets_none(gateway_run, planned):
    planned.plan = [answer(usage=(10, 1))] * 3
    for _ in range(3):
        assert gateway_run.call()[-1]["type"] == "turn"
    lines = gateway_run.call()
    assert lines[-1]["message"].startswith("the run used its budget of 25 input tokens (30 used)")
    gateway_run.set_agent(max_input_tokens=1000)
    assert gateway_run.call()[-1]["message"].startswith("the run used its budget of 3 model calls")
    gateway_run.set_agent(max_model_calls=4)
    planned.plan = [answer()]
    assert gateway_run.call()[-1]["type"] == "turn", "an agent may raise the defaults"


def test_a_calls_max_tokens_is_capped_at_the_output_tokens_left(gateway_run, planned):
    gateway_run.set_agent(max_output_tokens=100, max_model_calls=10)
    planned.plan = [answer(usage=(1, 60)), answer(), answer(), answer()]
    gateway_run.call()
    gateway_run.call()  # no max_tokens asked: 40 left is below a provider's default
    gateway_run.call(_request(max_tokens=1000))
    gateway_run.call(_request(max_tokens=10))
    assert [a.call.request.max_tokens for a in planned.attempts] == [100, 40, 35, 10]


def test_a_large_budget_leaves_max_tokens_alone(gateway_run, planned):
    gateway_run.set_agent(max_output_tokens=1_000_000)
    planned.plan = [answer(), answer()]
    gateway_run.call()
    gateway_run.call(_request(max_tokens=1000))
    assert [a.call.request.max_tokens for a in planned.attempts] == [None, 1000]


def _request(max_tokens: int | None) -> ModelRequest:
    return ModelRequest(
        system="s", messages=[Message(role="user", text="x")], max_tokens=max_tokens
    )
