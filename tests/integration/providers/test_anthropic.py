"""Agent runs on an `anthropic` model endpoint: the official SDK, called by the gateway, talks
over real HTTP to a local fake of the Messages API (`tests/fakes/anthropic_api.py`).

The runs are native (the gateway is on the trusted side for either flavor). Each test checks
both ends: what the run produced, and what the upstream saw (the endpoint's key and model, and
the conversation in the Messages format). The last tests call the provider alone, for the
failures a run would only show as one message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from actana.protocol.payloads import GatewayDelta, ModelTurn
from actana.providers.base import ModelCallError, ProviderCall, get_provider
from tests.fakes.anthropic_api import FakeAnthropic
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
from tests.integration.runs.conftest import Runner, finished_steps, step_pairs

MODEL = "claude-x"


@pytest.fixture
def key() -> str:
    return f"sk-ant-test-{secrets.token_hex(16)}"


@pytest.fixture
def fake(key: str) -> FakeAnthropic:
    return FakeAnthropic(api_key=key)


@pytest.fixture
def upstream(fake: FakeAnthropic) -> Iterator[str]:
    with serve(fake.app) as url:
        yield url


def anthropic_agent(runner: Runner, base_url: str, key: str) -> str:
    """A native agent on an anthropic endpoint with this key and base URL."""
    return endpoint_agent(runner, "anthropic", base_url, key, MODEL)


def assert_upstream_saw_only_the_endpoint(fake: FakeAnthropic, key: str, calls: int) -> None:
    """Every call carried exactly the endpoint's key and model, and nothing was malformed."""
    assert fake.problems == []
    assert len(fake.requests) == calls
    assert fake.keys_seen() == {key}
    for request in fake.requests:
        assert request.body["model"] == MODEL
        assert request.body["system"] == SYSTEM
        assert request.body["stream"] is True
        assert request.headers["anthropic-version"]
        assert {t["name"] for t in request.body["tools"]} >= {"bash", "read_file"}


def tool_results(request_body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of the last user message of a recorded request."""
    last = request_body["messages"][-1]
    assert last["role"] == "user"
    return [b for b in last["content"] if b["type"] == "tool_result"]


def test_text_answer(runner, fake, upstream, key):
    fake.reply(text="The answer is 42.", usage=(120, 9))
    final, lines = run_to_end(runner, anthropic_agent(runner, upstream, key), "what is it?")
    assert final["status"] == "succeeded", final
    assert final["message"] == "The answer is 42."
    assert final["usage"] == {"input_tokens": 120, "output_tokens": 9, "model_calls": 1}
    assert lines[-1]["type"] == "result"
    assert_upstream_saw_only_the_endpoint(fake, key, calls=1)
    assert fake.requests[0].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "what is it?"}]}
    ]
    assert fake.requests[0].body["max_tokens"] > 0


def test_one_tool_call_then_an_answer(runner, fake, upstream, key):
    fake.reply(text="Let me check.", tool_calls=[("bash", {"command": "echo hi"})])
    fake.reply(text="It printed hi.")
    final, lines = run_to_end(runner, anthropic_agent(runner, upstream, key))
    assert final["status"] == "succeeded", final
    assert final["message"] == "It printed hi."
    assert final["rounds"] == 2
    (step,) = finished_steps(lines)
    assert step["name"] == "bash"
    assert step["status"] == "succeeded"
    assert step["result"]["stdout"] == "hi\n"

    assert_upstream_saw_only_the_endpoint(fake, key, calls=2)
    second = fake.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    (use,) = [b for b in second[1]["content"] if b["type"] == "tool_use"]
    assert use["id"] == step["id"]  # the upstream's id is the step's id, and comes back
    assert use["input"] == {"command": "echo hi"}
    assert second[1]["content"][0] == {"type": "text", "text": "Let me check."}
    (result,) = tool_results(fake.requests[1].body)
    assert result["tool_use_id"] == use["id"]
    assert result["is_error"] is False
    assert json.loads(result["content"])["stdout"] == "hi\n"


def test_two_tool_calls_in_one_turn(runner, fake, upstream, key):
    fake.reply(tool_calls=[("bash", {"command": "echo one"}), ("bash", {"command": "echo two"})])
    fake.reply(text="Both ran.")
    final, lines = run_to_end(runner, anthropic_agent(runner, upstream, key))
    assert final["status"] == "succeeded", final
    steps = finished_steps(lines)
    assert [s["result"]["stdout"] for s in steps] == ["one\n", "two\n"]
    assert len(set(step_pairs(lines))) == 2

    assert_upstream_saw_only_the_endpoint(fake, key, calls=2)
    messages = fake.requests[1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    uses = [b["id"] for b in messages[1]["content"] if b["type"] == "tool_use"]
    assert uses == [s["id"] for s in steps]
    results = tool_results(fake.requests[1].body)
    assert [r["tool_use_id"] for r in results] == uses  # both answers in one user turn
    assert [json.loads(r["content"])["stdout"] for r in results] == ["one\n", "two\n"]


def test_a_tool_error_goes_back_as_an_error_result(runner, fake, upstream, key):
    fake.reply(tool_calls=[("read_file", {"path": "assets/missing.txt"})])
    fake.reply(text="The file is missing.")
    final, lines = run_to_end(runner, anthropic_agent(runner, upstream, key))
    assert final["status"] == "succeeded", final
    assert final["message"] == "The file is missing."
    (step,) = finished_steps(lines)
    assert step["status"] == "failed"

    assert_upstream_saw_only_the_endpoint(fake, key, calls=2)
    (result,) = tool_results(fake.requests[1].body)
    assert result["tool_use_id"] == step["id"]
    assert result["is_error"] is True
    assert "does not exist" in result["content"]


def test_a_streamed_answer_arrives_as_deltas_before_the_result(runner, fake, upstream, key):
    text = "Streaming works: " + " ".join(f"word{i}" for i in range(40)) + "."
    fake.reply(text=text)
    final, lines = run_to_end(runner, anthropic_agent(runner, upstream, key))
    assert final["status"] == "succeeded", final
    deltas = [line for line in lines if line["type"] == "delta"]
    assert len(deltas) > 10  # the fake streams five characters an event
    assert "".join(d["text"] for d in deltas) == text
    result = lines[-1]
    assert result["type"] == "result"
    assert result["message"] == text
    assert all(d["seq"] < result["seq"] for d in deltas)
    assert [d["seq"] for d in deltas] == sorted(d["seq"] for d in deltas)


def test_rate_limited_then_answered(runner, fake, upstream, key):
    fake.fail(429, retry_after="1")
    fake.reply(text="Answered after the wait.")
    final, _ = run_to_end(runner, anthropic_agent(runner, upstream, key))
    assert final["status"] == "succeeded", final
    assert final["message"] == "Answered after the wait."
    assert final["usage"]["model_calls"] == 1  # one turn, however many attempts it took
    assert_upstream_saw_only_the_endpoint(fake, key, calls=2)
    assert [r.status for r in fake.requests] == [429, 200]
    assert fake.requests[1].at - fake.requests[0].at >= 0.9  # retry-after was honoured


def test_an_error_in_the_middle_of_a_stream_is_not_retried(runner, fake, upstream, key):
    fake.reply(text="Half an answer", stream_error=529)
    fake.reply(text="never asked for")
    final, lines = run_to_end(runner, anthropic_agent(runner, upstream, key))
    assert final["status"] == "failed", final
    assert final["error"]["code"] == "model_error"
    assert "overloaded" in final["error"]["message"]
    # What was streamed stays streamed; a second attempt would have repeated it.
    assert "".join(line["text"] for line in lines if line["type"] == "delta") == "Half an answer"
    assert len(fake.requests) == 1
    assert fake.pending == 1


def test_a_refused_key_fails_the_run_with_help_and_no_key(runner, key, caplog):
    caplog.set_level(logging.INFO)
    other = FakeAnthropic(api_key="sk-ant-the-right-one")
    with serve(other.app) as url:
        final, lines = run_to_end(runner, anthropic_agent(runner, url, key))
    assert final["status"] == "failed", final
    assert final["error"]["code"] == "model_error"
    message = final["error"]["message"]
    assert "refused the API key" in message
    assert "api_key" in message
    assert lines[-1]["type"] == "error"
    assert lines[-1]["code"] == "model_error"
    assert other.keys_seen() == {key}  # the upstream got the key, in the request only

    assert "refused the API key" in caplog.text
    assert where_the_key_shows(runner, final, key, caplog.text) == []


# --- The provider alone: failures a run would only show as its error message ----------------


def anthropic_call(base_url: str, timeout_sec: float = 30.0) -> ProviderCall:
    return provider_call("anthropic", MODEL, base_url, timeout_sec)


def test_provider_streams_then_turns(fake, upstream, key):
    fake.reply(text="hello world", tool_calls=[("bash", {"command": "ls -la"})], usage=(3, 4))
    items = call_provider("anthropic", anthropic_call(upstream), key)
    *deltas, turn = items
    assert all(isinstance(d, GatewayDelta) for d in deltas)
    assert "".join(d.text for d in deltas if isinstance(d, GatewayDelta)) == "hello world"
    assert isinstance(turn, ModelTurn)
    assert turn.text == "hello world"
    assert [(c.name, c.args) for c in turn.tool_calls] == [("bash", {"command": "ls -la"})]
    assert turn.tool_calls[0].id.startswith("toolu_")
    assert turn.stop_reason == "tool_use"
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (3, 4)
    assert "system" not in fake.requests[0].body  # an empty system prompt is left out


def test_provider_unknown_model(key):
    fake = FakeAnthropic(api_key=key, models={"claude-real"})
    with serve(fake.app) as url:
        error = provider_error("anthropic", anthropic_call(url), key)
    assert "does not know the model 'claude-x'" in error.message
    assert (error.status, error.retryable) == (404, False)


def test_provider_context_too_long(fake, upstream, key):
    fake.fail(400, "prompt is too long: 250000 tokens > 200000 maximum")
    error = provider_error("anthropic", anthropic_call(upstream), key)
    assert "too long for the model's context" in error.message
    assert (error.status, error.retryable) == (400, False)


@pytest.mark.parametrize(("status", "words"), [(500, "failed"), (529, "overloaded")])
def test_provider_server_errors_are_retryable(fake, upstream, key, status, words):
    fake.fail(status)
    error = provider_error("anthropic", anthropic_call(upstream), key)
    assert words in error.message
    assert (error.status, error.retryable) == (status, True)


def test_provider_rate_limit_carries_retry_after(fake, upstream, key):
    fake.fail(429, retry_after="17")
    error = provider_error("anthropic", anthropic_call(upstream), key)
    assert "rate limited" in error.message
    assert (error.status, error.retryable, error.retry_after) == (429, True, 17.0)


def test_provider_unreachable(key):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = provider_error("anthropic", anthropic_call(f"http://127.0.0.1:{port}"), key)
    assert f"could not reach the provider at 127.0.0.1:{port}" in error.message
    assert error.retryable


def test_provider_timeout(fake, upstream, key):
    fake.reply(text="too late", delay=3.0)
    error = provider_error("anthropic", anthropic_call(upstream, timeout_sec=0.5), key)
    assert "did not answer within" in error.message
    assert error.retryable


def test_provider_connection_cut_mid_stream(fake, upstream, key):
    fake.reply(text="cut short here", tool_calls=[("bash", {})], cut=True)
    deltas: list[str] = []

    async def collect() -> None:
        async for item in get_provider("anthropic").turn(anthropic_call(upstream), key):
            assert isinstance(item, GatewayDelta)
            deltas.append(item.text)

    with pytest.raises(ModelCallError) as info:
        asyncio.run(collect())
    assert "broke off" in info.value.message
    assert info.value.retryable
    assert "".join(deltas) == "cut short here"
