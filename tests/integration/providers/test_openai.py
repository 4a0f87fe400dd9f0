"""Agent runs against OpenAI Chat Completions and OpenAI-compatible servers, end to end.

The real `openai` SDK, called by the gateway, talks over HTTP to a strict local fake of the API
(`tests/fakes/openai_api.py`); the agent runs in a native sandbox. Every test runs for both
providers, `openai` and `openai_compatible`, and checks that the fake saw exactly the endpoint's
key and model and never a request it had to refuse as malformed.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from actana.protocol.payloads import GatewayDelta, ModelTurn
from actana.providers.base import ModelCallError, get_provider
from actana.providers.openai_chat import INVALID_ARGUMENTS, TOOL_ERROR_PREFIX
from tests.fakes.http import serve
from tests.fakes.openai_api import FakeOpenAI, Recorded
from tests.integration.providers.conftest import endpoint_agent, provider_call
from tests.integration.runs.conftest import Runner, finished_steps

MODEL = "gpt-x"


@dataclass
class Upstream:
    """A fake upstream of one flavor, served, and the way to make agents that call it."""

    provider: str
    fake: FakeOpenAI
    key: str
    base_url: str
    runner: Runner

    def agent(self, key: str | None = None, **fields: Any) -> str:
        """A native agent on an endpoint of this provider; `key` overrides the right one."""
        return endpoint_agent(
            self.runner,
            self.provider,
            self.base_url,
            key or self.key,
            MODEL,
            **{"system_prompt": None, **fields},  # no system prompt unless the test gives one
        )

    def run(self, prompt: str = "go", **fields: Any) -> dict[str, Any]:
        """Start a run of a fresh agent and follow it to its end."""
        run = self.runner.start(self.agent(**fields), prompt)
        return self.runner.wait(run["id"])

    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the requests the fake answered with a 200."""
        return [r.body for r in self.fake.answered]

    def assert_clean(self, key: str | None = None) -> None:
        """Every request carried exactly the endpoint's key and model, none was malformed."""
        assert self.fake.problems == []
        assert self.fake.requests
        for seen in self.fake.requests:
            assert seen.headers["authorization"] == f"Bearer {key or self.key}"
            assert seen.body["model"] == MODEL
            assert not {"x-api-key", "api-key"} & set(seen.headers)


@pytest.fixture(params=["openai", "openai_compatible"])
def upstream(request: pytest.FixtureRequest, runner: Runner) -> Iterator[Upstream]:
    key = f"sk-canary-{secrets.token_hex(20)}"
    fake = FakeOpenAI(key, strict_max_tokens=request.param == "openai")
    with serve(fake.app) as url:
        yield Upstream(request.param, fake, key, f"{url}/v1", runner)


def _tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def _assistant_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c for m in body["messages"] if m["role"] == "assistant" for c in m.get("tool_calls", [])
    ]


def test_text_answer(upstream: Upstream) -> None:
    upstream.fake.reply(text="The answer is 42.", usage=(123, 7))
    final = upstream.run("what is the answer?", system_prompt="be brief")
    assert final["status"] == "succeeded", final["error"]
    assert final["message"] == "The answer is 42."
    assert final["usage"] == {"input_tokens": 123, "output_tokens": 7, "model_calls": 1}
    upstream.assert_clean()
    (body,) = upstream.bodies()
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what is the answer?"},
    ]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    names = {tool["function"]["name"] for tool in body["tools"]}
    assert {"bash", "read_file", "write_file"} <= names


def test_one_tool_call_then_text(upstream: Upstream) -> None:
    upstream.fake.reply(tool_calls=[("bash", {"command": "echo hi"})]).reply(text="It said hi.")
    final = upstream.run()
    assert final["status"] == "succeeded", final["error"]
    assert final["message"] == "It said hi."
    assert final["rounds"] == 2
    (step,) = finished_steps(upstream.runner.stored(final))
    assert step["name"] == "bash"
    assert step["status"] == "succeeded"
    assert step["result"]["stdout"] == "hi\n"
    upstream.assert_clean()
    first, second = upstream.bodies()
    (call,) = _assistant_calls(second)
    assert step["id"] == call["id"]  # the model's own id, kept both ways
    assert json.loads(call["function"]["arguments"]) == {"command": "echo hi"}
    (result,) = _tool_messages(second)
    assert result["tool_call_id"] == call["id"]
    assert json.loads(result["content"])["stdout"] == "hi\n"
    assert len(second["messages"]) == len(first["messages"]) + 2


def test_two_tool_calls_in_one_turn(upstream: Upstream) -> None:
    upstream.fake.reply(
        text="Both at once.",
        tool_calls=[
            ("write_file", {"path": "a.txt", "content": "alpha"}),
            ("bash", {"command": "echo two"}),
        ],
    ).reply(text="done")
    final = upstream.run()
    assert final["status"] == "succeeded", final["error"]
    steps = finished_steps(upstream.runner.stored(final))
    assert [(s["name"], s["status"]) for s in steps] == [
        ("write_file", "succeeded"),
        ("bash", "succeeded"),
    ]
    upstream.assert_clean()
    _, second = upstream.bodies()
    calls = _assistant_calls(second)
    assert [c["id"] for c in calls] == [s["id"] for s in steps]
    assert len({c["id"] for c in calls}) == 2
    assistant = next(m for m in second["messages"] if m["role"] == "assistant")
    assert assistant["content"] == "Both at once."
    results = _tool_messages(second)
    assert [r["tool_call_id"] for r in results] == [c["id"] for c in calls]
    assert json.loads(results[1]["content"])["stdout"] == "two\n"


def test_a_tool_error_is_fed_back(upstream: Upstream) -> None:
    upstream.fake.reply(tool_calls=[("read_file", {"path": "missing.txt"})]).reply(text="no file")
    final = upstream.run()
    assert final["status"] == "succeeded", final["error"]
    (step,) = finished_steps(upstream.runner.stored(final))
    assert step["status"] == "failed"
    upstream.assert_clean()
    (result,) = _tool_messages(upstream.bodies()[1])
    assert result["content"].startswith(TOOL_ERROR_PREFIX)
    assert "missing.txt" in result["content"]


def test_broken_arguments_become_a_tool_error_the_model_can_fix(upstream: Upstream) -> None:
    upstream.fake.reply(tool_calls=[("bash", '{"command": "echo hi"')])  # cut off
    upstream.fake.reply(tool_calls=[("bash", {"command": "echo fixed"})]).reply(text="ok")
    final = upstream.run()
    assert final["status"] == "succeeded", final["error"]
    broken, fixed = finished_steps(upstream.runner.stored(final))
    assert broken["status"] == "failed"
    assert INVALID_ARGUMENTS in broken["error"]
    assert fixed["status"] == "succeeded"
    upstream.assert_clean()
    second = upstream.bodies()[1]
    (result,) = _tool_messages(second)
    assert result["content"].startswith(TOOL_ERROR_PREFIX)
    assert INVALID_ARGUMENTS in result["content"]
    # The broken call goes back as valid JSON that still shows what the model wrote.
    (call,) = _assistant_calls(second)
    assert json.loads(call["function"]["arguments"]) == {INVALID_ARGUMENTS: '{"command": "echo hi"'}


def test_a_streamed_answer_arrives_as_deltas_before_the_result(upstream: Upstream) -> None:
    text = "A streamed answer, long enough to come in many small pieces. " * 3
    upstream.fake.reply(text=text)
    final = upstream.run()
    assert final["status"] == "succeeded", final["error"]
    lines = upstream.runner.stored(final)
    deltas = [line for line in lines if line["type"] == "delta"]
    assert len(deltas) > 5
    assert "".join(d["text"] for d in deltas) == text
    assert max(d["seq"] for d in deltas) < lines[-1]["seq"]
    assert lines[-1]["type"] == "result"
    assert [d["seq"] for d in deltas] == sorted(d["seq"] for d in deltas)


@pytest.mark.parametrize("status", [429, 500])
def test_rate_limited_or_failing_then_success(upstream: Upstream, status: int) -> None:
    if status == 429:
        upstream.fake.rate_limited(retry_after_ms=50)
    else:
        upstream.fake.fail(status, headers={"retry-after-ms": "20"})
    upstream.fake.reply(text="after the wait")
    final = upstream.run()
    assert final["status"] == "succeeded", final["error"]
    assert final["message"] == "after the wait"
    assert [r.status for r in upstream.fake.requests] == [status, 200]
    upstream.assert_clean()


def test_a_refused_key_fails_the_run_helpfully_without_the_key(upstream: Upstream) -> None:
    wrong = f"sk-canary-{secrets.token_hex(20)}"
    final = upstream.run(key=wrong)
    assert final["status"] == "failed", final
    assert final["error"]["code"] == "model_error"
    assert "API key" in final["error"]["message"]
    assert "401" in final["error"]["message"]
    # Upstream saw exactly the endpoint's key, once: a refused key is not retried.
    (seen,) = upstream.fake.requests
    assert seen.status == 401
    upstream.assert_clean(key=wrong)
    t = upstream.runner.tenant
    run_id = final["id"]
    texts = [
        (upstream.runner.run_dir(final) / "stream.jsonl").read_text(),
        t.client.get(t.path(f"/runs/{run_id}/result.json")).text,
        t.client.get(t.path(f"/runs/{run_id}/steps.json")).text,
        t.client.get(t.path(f"/runs/{run_id}")).text,
    ]
    for text in texts:
        assert wrong not in text
        # OpenAI's message echoes the key's last characters; the hash chain's and the files'
        # 64-hex-digit digests may hold any 4 of them by chance, so they are left out.
        assert wrong[-4:] not in re.sub(r"[0-9a-f]{64}", "", text)


# --- openai_compatible servers that are not quite OpenAI ------------------------------------


@pytest.fixture
def limited(runner: Runner) -> Iterator[Upstream]:
    """An old llama.cpp-like server: no key, refuses stream_options, never reports usage."""
    fake = FakeOpenAI(None, reject_stream_options=True, send_usage=False, strict_max_tokens=False)
    with serve(fake.app) as url:
        yield Upstream("openai_compatible", fake, "", f"{url}/v1", runner)


def test_a_compatible_server_without_stream_options_or_usage(limited: Upstream) -> None:
    limited.fake.reply(tool_calls=[("bash", {"command": "echo hi"})]).reply(text="fine")
    agent = endpoint_agent(
        limited.runner, "openai_compatible", limited.base_url, None, MODEL, system_prompt=None
    )
    final = limited.runner.wait(limited.runner.start(agent)["id"])
    assert final["status"] == "succeeded", final["error"]
    assert final["message"] == "fine"
    assert limited.fake.problems == []
    # Each turn: once refused for stream_options, once without it.
    requests: list[Recorded] = limited.fake.requests
    assert [(r.status, "stream_options" in r.body) for r in requests] == [
        (400, True),
        (200, False),
        (400, True),
        (200, False),
    ]
    # No usage came: it is estimated, so that the token budgets keep counting.
    assert final["usage"]["input_tokens"] > 0
    assert final["usage"]["output_tokens"] > 0
    assert final["usage"]["model_calls"] == 2


# --- One provider call, without a run: failures that are hard to provoke in a run ------------

FLAVORS = ["openai", "openai_compatible"]


def _turn(
    flavor: str, base_url: str, key: str | None, model: str = MODEL
) -> tuple[list[GatewayDelta | ModelTurn], ModelCallError | None]:
    """Everything one provider call yields, and the error it ended with, if any."""
    call = provider_call(flavor, model, base_url, timeout_sec=10, system="s")
    items: list[GatewayDelta | ModelTurn] = []

    async def collect() -> ModelCallError | None:
        try:
            async for item in get_provider(flavor).turn(call, key):
                items.append(item)
        except ModelCallError as exc:
            return exc
        return None

    return items, anyio.run(collect)


@pytest.fixture(params=FLAVORS)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeOpenAI, str]]:
    fake = FakeOpenAI("sk-right", models={MODEL}, strict_max_tokens=request.param == "openai")
    with serve(fake.app) as url:
        yield request.param, fake, f"{url}/v1"


def test_a_connection_dropped_mid_answer_is_retryable_and_says_so(served) -> None:
    flavor, fake, base_url = served
    fake.reply(text="a long answer that never ends", cut_after=3)
    items, error = _turn(flavor, base_url, "sk-right")
    assert items
    assert all(isinstance(item, GatewayDelta) for item in items)
    assert error is not None
    assert error.retryable
    assert "broke off during the answer" in error.message


def test_an_unknown_model(served) -> None:
    flavor, _, base_url = served
    items, error = _turn(flavor, base_url, "sk-right", model="gpt-nope")
    assert items == []
    assert error is not None
    assert "does not know model 'gpt-nope'" in error.message
    assert error.status == 404
    assert not error.retryable


def test_a_conversation_too_long(served) -> None:
    flavor, fake, base_url = served
    fake.fail(400)  # OpenAI's context_length_exceeded
    _, error = _turn(flavor, base_url, "sk-right")
    assert error is not None
    assert error.message.startswith("the conversation is too long for the model's context")
    assert not error.retryable


@pytest.mark.parametrize("flavor", FLAVORS)
def test_nothing_listening(flavor: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    _, error = _turn(flavor, f"http://127.0.0.1:{port}/v1", "sk-right")
    assert error is not None
    assert error.retryable
    assert "could not reach" in error.message


def test_a_keyless_local_server_gets_nothing_of_the_servers_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in [
        ("OPENAI_API_KEY", "sk-operator-own-key"),
        ("OPENAI_ORG_ID", "org-operator"),
        ("OPENAI_PROJECT_ID", "proj-operator"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
    ]:
        monkeypatch.setenv(name, value)
    fake = FakeOpenAI(None, strict_max_tokens=False).reply(text="local")
    with serve(fake.app) as url:
        items, error = _turn("openai_compatible", f"{url}/v1", None)
    assert error is None
    assert isinstance(items[-1], ModelTurn)
    assert items[-1].text == "local"
    assert fake.problems == []
    (seen,) = fake.requests
    assert seen.headers["authorization"] == "Bearer no-key"
    assert not {"openai-organization", "openai-project"} & set(seen.headers)
    assert "operator" not in json.dumps(seen.headers)
