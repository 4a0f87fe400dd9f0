"""The crew request schemas on their own: no database, no server."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from actana.crew.agents import AgentCreate, AgentUpdate
from actana.crew.environments import EnvironmentCreate, VariableIn, normalise_domain
from actana.crew.mcp_servers import McpServerUpdate
from actana.crew.model_endpoints import ModelEndpointCreate, ScriptedTurn
from actana.crew.skills import SkillCreate, SkillUpdate, parse_front_matter
from actana.crew.workspaces import ApiKeyCreate
from actana.exceptions import InvalidInputError


def error_locations(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[object, ...]]:
    return [tuple(e["loc"]) for e in exc.value.errors()]


def test_scripted_turn_is_text_or_tool_calls():
    assert ScriptedTurn(text="done").tool_calls is None
    turn = ScriptedTurn.model_validate({"tool_calls": [{"name": "write_file"}]})
    assert turn.tool_calls is not None
    assert (turn.tool_calls[0].name, turn.tool_calls[0].args, turn.text) == ("write_file", {}, None)
    assert ScriptedTurn(text="").text == ""  # an empty final text is still a text turn


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"text": "x", "tool_calls": [{"name": "write_file"}]},
        {"tool_calls": []},
        {"tool_calls": [{"name": "has space"}]},
        {"tool_calls": [{"name": "1starts_with_digit"}]},
        {"tool_calls": [{"name": "x" * 129}]},
        {"tool_calls": [{"name": "ok", "arguments": {}}]},
        {"text": "x", "role": "assistant"},
    ],
)
def test_bad_scripted_turns_are_refused(raw):
    with pytest.raises(ValidationError):
        ScriptedTurn.model_validate(raw)


def test_model_endpoint_api_key_does_not_show_in_repr_or_dump():
    body = ModelEndpointCreate(name="e", provider="openai", model="m", api_key="sk-SECRET-1")
    assert "sk-SECRET-1" not in repr(body)
    assert "sk-SECRET-1" not in body.model_dump_json()
    assert body.api_key is not None
    assert body.api_key.get_secret_value() == "sk-SECRET-1"
    with pytest.raises(ValidationError) as exc:
        ModelEndpointCreate.model_validate({"name": "e", "provider": "azure"})
    assert error_locations(exc) == [("provider",)]


@pytest.mark.parametrize("name", ["a", "pdf-tools", "v2", "x1-y2-z3", "a" * 64])
def test_skill_names_that_are_accepted(name):
    assert SkillCreate(name=name, description="d", skill_md="# s").name == name
    assert SkillUpdate(name=name).name == name


@pytest.mark.parametrize(
    "name", ["", "Pdf", "pdf_tools", "pdf.tools", "a--b", "-a", "a-", "pdf tools", "a" * 65]
)
def test_skill_names_that_are_refused(name):
    with pytest.raises(ValidationError) as exc:
        SkillCreate(name=name, description="d", skill_md="# s")
    assert error_locations(exc) == [("name",)]
    with pytest.raises(ValidationError):
        SkillUpdate(name=name)


def test_skill_needs_description_and_text():
    with pytest.raises(ValidationError) as exc:
        SkillCreate.model_validate({"name": "s", "description": "", "skill_md": ""})
    assert sorted(error_locations(exc)) == [("description",), ("skill_md",)]


def test_front_matter():
    text = "---\nname: pdf\ndescription: 'Reads PDFs: fast'\n  indented: no\n---\n# body\n"
    assert parse_front_matter(text) == {"name": "pdf", "description": "Reads PDFs: fast"}
    assert parse_front_matter("---\nname: pdf\n") == {}  # unterminated
    assert parse_front_matter("# no front matter\nname: x\n") == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com", "example.com"),
        (" Example.COM. ", "example.com"),
        ("*.PyPI.org", "*.pypi.org"),
        ("a-b.c-d.example", "a-b.c-d.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        # One label: reachable only where the deployment exempts its network (the egress proxy
        # refuses loopback otherwise), but a valid entry.
        ("localhost", "localhost"),
    ],
)
def test_normalise_domain_accepts_domain_names(raw, expected):
    assert normalise_domain(raw, "allowed_domains.0") == expected


@pytest.mark.parametrize(
    "raw",
    [
        "10.0.0.1",
        "*.10.0.0.1",
        "127.1",  # resolvers read these legacy forms as 127.0.0.1 / 15.0.0.1
        "127.0.1",
        "0x7f.1",
        "0x7f.0.0.1",
        "017.0.0.1",
        "*.10.1",
        "::1",
        "[::1]",
        "2001:db8::1",
        "https://example.com",
        "example.com/path",
        "example.com:443",
        "user@example.com",
        "*",
        "*.com.",
        "-bad.example.com",
        "bad-.example.com",
        "a..example.com",
        "exa mple.com",
        "",
        "x" * 64 + ".com",
    ],
)
def test_normalise_domain_refuses_ips_urls_and_junk(raw):
    with pytest.raises(InvalidInputError) as exc:
        normalise_domain(raw, "allowed_domains.3")
    assert exc.value.field == "allowed_domains.3"
    assert exc.value.http_status == 422


def test_environment_defaults_and_strictness():
    env = EnvironmentCreate(name="e")
    assert (env.variables, env.network_policy, env.allowed_domains) == ([], "none", [])
    assert VariableIn(name="A").model_dump() == {"name": "A", "value": None, "secret": False}
    with pytest.raises(ValidationError) as exc:
        EnvironmentCreate.model_validate({"name": "e", "variables": [{"name": "A", "v": "1"}]})
    assert error_locations(exc) == [("variables", 0, "v")]
    with pytest.raises(ValidationError):
        EnvironmentCreate.model_validate({"name": "e", "network_policy": "everything"})


def test_agent_defaults_and_limits():
    agent = AgentCreate(name="a", model_endpoint_id="me_1")
    assert (agent.max_rounds, agent.sandbox_flavor, agent.timeout_sec) == (10, "container", None)
    assert (agent.skill_ids, agent.mcp_server_ids, agent.environment_id) == ([], [], None)
    bads: list[dict[str, Any]] = [
        {"max_rounds": 0},
        {"max_rounds": 501},
        {"timeout_sec": 0},
        {"sandbox_flavor": "vm"},
    ]
    for bad in bads:
        with pytest.raises(ValidationError):
            AgentCreate.model_validate({"name": "a", "model_endpoint_id": "me_1", **bad})
    assert AgentUpdate.model_validate({"environment_id": None}).model_fields_set == {
        "environment_id"
    }


@pytest.mark.parametrize("name", ["", ".hidden", "-x", "has space", "ünï", "x" * 65])
def test_crew_names_are_url_and_file_safe(name):
    with pytest.raises(ValidationError):
        AgentCreate(name=name, model_endpoint_id="me_1")
    with pytest.raises(ValidationError):
        ApiKeyCreate(name=name)


def test_mcp_header_null_means_keep():
    update = McpServerUpdate.model_validate({"headers": {"Authorization": None}})
    assert update.headers == {"Authorization": None}
    assert McpServerUpdate().headers is None
