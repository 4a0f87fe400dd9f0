"""The sandbox cannot choose: a model request that names a model, endpoint, base URL or key (at
the top or nested anywhere) is refused with a 422 that says why, and no model call is made."""

from __future__ import annotations

import logging

import httpx
import pytest

from actana.db.models import Run
from tests.integration.gateway.test_session_token import TURN, _session_token
from tests.integration.runs.test_tokens import _running_run

TOOL = {"name": "bash", "description": "run", "parameters": {"type": "object"}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**TURN, "model": "gpt-4o"}, "model"),
        ({**TURN, "base_url": "http://attacker.example/v1"}, "base_url"),
        ({**TURN, "api_key": "sk-mine"}, "api_key"),
        ({**TURN, "provider": "openai"}, "provider"),
        ({**TURN, "model_endpoint_id": "me_other"}, "model_endpoint_id"),
        ({**TURN, "headers": {"x-api-key": "sk-mine"}}, "headers"),
        (
            {**TURN, "messages": [{"role": "user", "text": "x", "api_key": "k"}]},
            "messages.0.api_key",
        ),
        ({**TURN, "tools": [{**TOOL, "base_url": "http://x"}]}, "tools.0.base_url"),
        (
            {
                **TURN,
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "name": "bash", "args": {}, "model": "m"}],
                    }
                ],
            },
            "messages.0.tool_calls.0.model",
        ),
    ],
)
def test_a_request_that_tries_to_choose_is_refused(
    context, tenant, live_server, body, field, caplog
):
    run_id = _running_run(context, tenant)
    token = _session_token(context, run_id)
    with caplog.at_level(logging.WARNING, logger="actana"):
        r = httpx.post(
            live_server.url + "/sandbox/v1/model",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field
    assert error["message"] == (
        f"{field}: unknown field; a model request is the conversation only, the run's agent "
        "decides the model, endpoint and key"
    )
    assert f"model request refused: unknown field '{field}'" in caplog.text
    with context.database.session() as session:
        assert session.get(Run, run_id).model_calls == 0


def test_the_plain_conversation_is_accepted(context, tenant, live_server):
    run_id = _running_run(context, tenant)
    token = _session_token(context, run_id)
    body = {**TURN, "tools": [TOOL], "max_tokens": 100}
    r = httpx.post(
        live_server.url + "/sandbox/v1/model",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    assert r.text.splitlines()[-1].startswith('{"type":"turn"')
