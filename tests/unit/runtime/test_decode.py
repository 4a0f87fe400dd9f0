"""Building the protocol's dataclasses from JSON, with errors that name the field at fault."""

from __future__ import annotations

from typing import Any

import pytest

from actana.protocol.payloads import ConfigPayload, EnvPayload, ModelTurn
from actana.runtime.decode import DecodeError, decode


def config(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "run_id": "r1",
        "prompt": "p",
        "agent": {"name": "a", "system_prompt": "s"},
        "model": {"provider": "scripted", "model": "m"},
        "tools": ["bash"],
        "limits": {"deadline_ms": 123},
        "session_token": "tok",
    }
    value.update(changes)
    return value


def test_a_config_is_built_with_defaults_and_nested_types() -> None:
    built = decode(ConfigPayload, config(newer_field="ignored"))
    assert built.agent.max_rounds == 10
    assert built.limits.deadline_ms == 123
    assert built.limits.tool_output_bytes == 64 * 1024
    assert built.tools == ["bash"]


def test_a_turn_with_tool_calls_and_usage() -> None:
    turn = decode(
        ModelTurn,
        {
            "text": None,
            "tool_calls": [{"id": "c1", "name": "bash", "args": {"command": "ls"}}],
            "usage": {"input_tokens": 3, "output_tokens": 4, "model_calls": 1},
        },
    )
    assert turn.tool_calls[0].args == {"command": "ls"}
    assert turn.usage.output_tokens == 4
    assert turn.stop_reason == "end_turn"


def test_optional_fields_accept_null() -> None:
    assert decode(EnvPayload, {"deadline_ms": None}).deadline_ms is None
    assert decode(EnvPayload, {}).variables == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (config(run_id=None), "ConfigPayload.run_id: expected a string, got null"),
        (config(limits={}), "ConfigPayload.limits.deadline_ms: missing"),
        (config(limits={"deadline_ms": True}), "deadline_ms: expected an integer, got a boolean"),
        (config(tools=["bash", 3]), "ConfigPayload.tools[1]: expected a string, got int"),
        (config(agent="a"), "ConfigPayload.agent: expected an object, got a string"),
        ([], "ConfigPayload: expected an object, got a list"),
    ],
)
def test_a_wrong_shape_names_the_field(value: Any, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(ConfigPayload, value)
    assert message in str(caught.value)


def test_env_values_must_be_strings() -> None:
    with pytest.raises(DecodeError, match=r"EnvPayload\.variables\.A: expected a string"):
        decode(EnvPayload, {"variables": {"A": 1}})
