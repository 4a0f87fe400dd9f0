"""Agent runs on a `gemini` model endpoint: the official `google-genai` SDK, called by the
gateway, talks over real HTTP to a local fake of the Gemini API (`tests/fakes/gemini_api.py`).

The runs are native (the gateway is on the trusted side for either flavor). Each test checks
both ends: what the run produced, and what the upstream saw (the endpoint's key in
`x-goog-api-key`, its model in the path, and the conversation as Gemini `contents`). The last
tests call the provider alone, for failures a run would only show as one message.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from actana.protocol.payloads import GatewayDelta, ModelTurn
from actana.providers.base import ProviderCall
from tests.fakes.gemini_api import (
    SIGNATURE,
    FakeGemini,
    fail,
    rate_limited,
    reply,
    server_error,
)
from tests.fakes.http import serve
from tests.integration.providers.conftest import (
    SYSTEM,
    call_provider,
    endpoint_agent,
    provider_call,
    provider_error,
    run_to_end,
    where_the_key_shows,
)
from tests.integration.runs.conftest import Runner, finished_steps

MODEL = "gemini-x"


@pytest.fixture
def key() -> str:
    return f"AIzaSy-test-{secrets.token_hex(16)}"


@pytest.fixture
def fake(key: str) -> FakeGemini:
    return FakeGemini(api_key=key, models=(MODEL, "gemini-3-x"))


@pytest.fixture
def upstream(fake: FakeGemini) -> Iterator[str]:
    with serve(fake) as url:
        yield url


def gemini_agent(runner: Runner, base_url: str, key: str, model: str = MODEL) -> str:
    """A native agent on a gemini endpoint with this key, model and base URL."""
    return endpoint_agent(runner, "gemini", base_url, key, model)


def assert_upstream_saw_only_the_endpoint(
    fake: FakeGemini, key: str, calls: int, model: str = MODEL
) -> None:
    """Every call carried exactly the endpoint's key and model, and nothing was malformed."""
    assert fake.problems == []
    assert len(fake.requests) == calls
    for request in fake.requests:
        assert request.headers["x-goog-api-key"] == key
        assert "key" not in request.query
        assert request.path == f"/v1beta/models/{model}:streamGenerateContent"
        assert request.query == {"alt": "sse"}
        assert request.body["systemInstruction"]["parts"] == [{"text": SYSTEM}]
        declared = request.body["tools"][0]["functionDeclarations"]
        assert {d["name"] for d in declared} >= {"bash", "read_file"}


def function_responses(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The functionResponse parts of the last content of a recorded request."""
    last = body["contents"][-1]
    assert last["role"] == "user"
    return [part["functionResponse"] for part in last["parts"]]


def function_calls(body: dict[str, Any], index: int) -> list[dict[str, Any]]:
    content = body["contents"][index]
    assert content["role"] == "model"
    return [part["functionCall"] for part in content["parts"] if "functionCall" in part]


def test_text_answer(runner, fake, upstream, key):
    fake.plan(reply("The answer is 42.", usage=(120, 9)))
    final, lines = run_to_end(runner, gemini_agent(runner, upstream, key), "what is it?")
    assert final["status"] == "succeeded", final
    assert final["message"] == "The answer is 42."
    assert final["usage"] == {"input_tokens": 120, "output_tokens": 9, "model_calls": 1}
    assert lines[-1]["type"] == "result"
    assert_upstream_saw_only_the_endpoint(fake, key, calls=1)
    assert fake.requests[0].body["contents"] == [
        {"role": "user", "parts": [{"text": "what is it?"}]}
    ]


def test_one_tool_call_then_an_answer(runner, fake, upstream, key):
    fake.plan(
        reply("Let me check.", calls=[("bash", {"command": "echo hi"})]),
        reply("It printed hi."),
    )
    final, lines = run_to_end(runner, gemini_agent(runner, upstream, key))
    assert final["status"] == "succeeded", final
    assert final["message"] == "It printed hi."
    assert final["rounds"] == 2
    (step,) = finished_steps(lines)
    assert (step["id"], step["name"], step["status"]) == ("call_0_0", "bash", "succeeded")
    assert step["result"]["stdout"] == "hi\n"

    assert_upstream_saw_only_the_endpoint(fake, key, calls=2)
    second = fake.requests[1].body
    assert [c["role"] for c in second["contents"]] == ["user", "model", "user"]
    assert second["contents"][1]["parts"][0] == {"text": "Let me check."}
    (call,) = function_calls(second, 1)
    assert call == {"name": "bash", "args": {"command": "echo hi"}}  # no id of ours upstream
    (response,) = function_responses(second)
    assert response["name"] == "bash"
    assert response["response"]["output"]["stdout"] == "hi\n"


def test_two_tool_calls_in_one_turn_keep_the_models_ids(runner, fake, upstream, key):
    calls = [("bash", {"command": "echo one"}), ("bash", {"command": "echo two"})]
    fake.plan(reply(calls=calls, call_ids=True), reply("Both ran."))
    final, lines = run_to_end(runner, gemini_agent(runner, upstream, key))
    assert final["status"] == "succeeded", final
    steps = finished_steps(lines)
    assert [s["result"]["stdout"] for s in steps] == ["one\n", "two\n"]
    assert [s["id"] for s in steps] == ["fc-0-bash", "fc-1-bash"]  # the upstream's ids

    assert_upstream_saw_only_the_endpoint(fake, key, calls=2)
    second = fake.requests[1].body
    assert [c["role"] for c in second["contents"]] == ["user", "model", "user"]
    assert [c["id"] for c in function_calls(second, 1)] == ["fc-0-bash", "fc-1-bash"]
    responses = function_responses(second)  # both answers in one user content, in call order
    assert [r["id"] for r in responses] == ["fc-0-bash", "fc-1-bash"]
    assert [r["response"]["output"]["stdout"] for r in responses] == ["one\n", "two\n"]


def test_a_tool_error_goes_back_as_an_error_response(runner, fake, upstream, key):
    fake.plan(
        reply(calls=[("read_file", {"path": "assets/missing.txt"})]),
        reply("The file is missing."),
    )
    final, lines = run_to_end(runner, gemini_agent(runner, upstream, key))
    assert final["status"] == "succeeded", final
    assert final["message"] == "The file is missing."
    (step,) = finished_steps(lines)
    assert step["status"] == "failed"

    assert_upstream_saw_only_the_endpoint(fake, key, calls=2)
    (response,) = function_responses(fake.requests[1].body)
    assert response["name"] == "read_file"
    assert set(response["response"]) == {"error"}
    assert "does not exist" in response["response"]["error"]


def test_a_gemini_3_model_gets_its_turns_signed(runner, fake, upstream, key):
    # Gemini 3 refuses a replayed function call without a thought signature; the fake too.
    fake.plan(
        reply(calls=[("bash", {"command": "echo a"})]),
        reply(calls=[("bash", {"command": "echo b"}), ("bash", {"command": "echo c"})]),
        reply("Three commands ran."),
    )
    final, lines = run_to_end(runner, gemini_agent(runner, upstream, key, model="gemini-3-x"))
    assert final["status"] == "succeeded", final
    assert [s["id"] for s in finished_steps(lines)] == ["call_0_0", "call_1_0", "call_1_1"]
    assert_upstream_saw_only_the_endpoint(fake, key, calls=3, model="gemini-3-x")
    last = fake.requests[2].body["contents"]
    assert [c["role"] for c in last] == ["user", "model", "user", "model", "user"]
    signed = [["thoughtSignature" in p for p in last[i]["parts"]] for i in (1, 3)]
    assert signed == [[True], [True, False]]
    # The model's own signatures went back (kept through the sandbox), not Google's stand-in.
    sent = [
        p["thoughtSignature"] for i in (1, 3) for p in last[i]["parts"] if "thoughtSignature" in p
    ]
    assert sent == [SIGNATURE, SIGNATURE]


def test_a_streamed_answer_arrives_as_deltas_before_the_result(runner, fake, upstream, key):
    text = "Streaming works: " + " ".join(f"word{i}" for i in range(40)) + "."
    fake.plan(reply(text, pieces=8))
    final, lines = run_to_end(runner, gemini_agent(runner, upstream, key))
    assert final["status"] == "succeeded", final
    deltas = [line for line in lines if line["type"] == "delta"]
    assert len(deltas) == 8
    assert "".join(d["text"] for d in deltas) == text
    result = lines[-1]
    assert result["type"] == "result"
    assert result["message"] == text
    assert all(d["seq"] < result["seq"] for d in deltas)
    assert [d["seq"] for d in deltas] == sorted(d["seq"] for d in deltas)


def test_rate_limited_then_answered(runner, fake, upstream, key):
    fake.plan(rate_limited(retry_delay="0.5s"), reply("Answered after the wait."))
    final, _ = run_to_end(runner, gemini_agent(runner, upstream, key))
    assert final["status"] == "succeeded", final
    assert final["message"] == "Answered after the wait."
    assert final["usage"]["model_calls"] == 1  # one turn, however many attempts it took
    assert_upstream_saw_only_the_endpoint(fake, key, calls=2)
    assert [r.status for r in fake.requests] == [429, 200]
    assert fake.requests[1].at - fake.requests[0].at >= 0.45  # Google's RetryInfo was honoured


def test_a_refused_key_fails_the_run_with_help_and_no_key(runner, key, caplog):
    caplog.set_level(logging.INFO)
    other = FakeGemini(api_key="AIzaSy-the-right-one")
    with serve(other) as url:
        final, lines = run_to_end(runner, gemini_agent(runner, url, key))
    assert final["status"] == "failed", final
    assert final["error"]["code"] == "model_error"
    message = final["error"]["message"]
    assert "refused the endpoint's API key" in message
    assert "api_key" in message
    assert lines[-1]["type"] == "error"
    assert lines[-1]["code"] == "model_error"
    assert [r.headers["x-goog-api-key"] for r in other.requests] == [key]  # and not retried
    assert other.requests[0].model == MODEL

    assert "refused the endpoint's API key" in caplog.text
    assert where_the_key_shows(runner, final, key, caplog.text) == []


# --- The provider alone: failures a run would only show as its error message ----------------


def gemini_call(base_url: str, timeout_sec: float = 30.0, turn_index: int = 0) -> ProviderCall:
    return provider_call("gemini", MODEL, base_url, timeout_sec, turn_index=turn_index)


def test_provider_streams_then_turns(fake, upstream, key):
    fake.plan(reply("hello world", calls=[("bash", {"command": "ls -la"})], usage=(3, 4)))
    *deltas, turn = call_provider("gemini", gemini_call(upstream, turn_index=5), key)
    assert all(isinstance(d, GatewayDelta) for d in deltas)
    assert "".join(d.text for d in deltas if isinstance(d, GatewayDelta)) == "hello world"
    assert isinstance(turn, ModelTurn)
    assert turn.text == "hello world"
    assert [(c.id, c.name, c.args) for c in turn.tool_calls] == [
        ("call_5_0", "bash", {"command": "ls -la"})
    ]
    assert turn.stop_reason == "tool_use"
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (3, 4)
    body = fake.requests[0].body
    assert "systemInstruction" not in body  # an empty system prompt is left out
    assert "tools" not in body
    assert fake.problems == []


def test_provider_unknown_model(key):
    fake = FakeGemini(api_key=key, models=("gemini-real",))
    with serve(fake) as url:
        error = provider_error("gemini", gemini_call(url), key)
    assert "does not know the model 'gemini-x'" in error.message
    assert (error.status, error.retryable) == (404, False)


def test_provider_context_too_long(fake, upstream, key):
    fake.plan(
        fail(
            400,
            "The input token count (1200000) exceeds the maximum number of tokens allowed "
            "(1048576).",
        )
    )
    error = provider_error("gemini", gemini_call(upstream), key)
    assert error.message.startswith("the conversation is too long for the model's context")
    assert (error.status, error.retryable) == (400, False)


@pytest.mark.parametrize("planned", [server_error(500), server_error(503)])
def test_provider_server_errors_are_retryable(fake, upstream, key, planned):
    fake.plan(planned)
    error = provider_error("gemini", gemini_call(upstream), key)
    assert "Gemini failed" in error.message
    assert (error.status, error.retryable) == (planned.status, True)
    assert len(fake.requests) == 1  # the SDK did not retry on its own


def test_provider_rate_limit_carries_googles_retry_delay(fake, upstream, key):
    fake.plan(rate_limited(retry_delay="17s"))
    error = provider_error("gemini", gemini_call(upstream), key)
    assert "rate-limited" in error.message
    assert (error.status, error.retryable, error.retry_after) == (429, True, 17.0)
    assert len(fake.requests) == 1


def test_provider_blocked_prompt(fake, upstream, key):
    fake.plan(reply(block_reason="SAFETY"))
    error = provider_error("gemini", gemini_call(upstream), key)
    assert "blocked the prompt" in error.message
    assert not error.retryable


def test_provider_unreachable(key):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = provider_error("gemini", gemini_call(f"http://127.0.0.1:{port}"), key)
    assert f"could not talk to Gemini at 127.0.0.1:{port}" in error.message
    assert error.retryable


def test_provider_stays_within_the_time_budget(fake, upstream, key):
    fake.plan(reply("too late", delay=3.0))
    error = provider_error("gemini", gemini_call(upstream, timeout_sec=0.5), key)
    assert "did not finish within the 0.5 s left to the run" in error.message
