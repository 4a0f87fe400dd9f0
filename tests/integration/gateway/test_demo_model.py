"""`actana demo` picks its model from the environment: a provider whose key is set (with a
default model, or ACTANA_DEMO_MODEL), else the offline scripted one; the demo agent follows."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from actana.cli.demo import DemoModel, demo_model, ensure_demo_crew
from actana.crew import model_endpoints
from actana.db.models import Agent, ModelEndpoint


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, DemoModel("scripted", "script")),
        ({"ANTHROPIC_API_KEY": " "}, DemoModel("scripted", "script")),
        (
            {"ANTHROPIC_API_KEY": "sk-ant-1"},
            DemoModel("anthropic", "claude-sonnet-4-5", "sk-ant-1", "ANTHROPIC_API_KEY"),
        ),
        (
            {"OPENAI_API_KEY": "sk-2", "ACTANA_DEMO_MODEL": "gpt-4o"},
            DemoModel("openai", "gpt-4o", "sk-2", "OPENAI_API_KEY"),
        ),
        (
            {"GEMINI_API_KEY": "AIza3"},
            DemoModel("gemini", "gemini-2.5-flash", "AIza3", "GEMINI_API_KEY"),
        ),
        (
            {"GEMINI_API_KEY": "AIza3", "OPENAI_API_KEY": "sk-2", "ANTHROPIC_API_KEY": "sk-ant-1"},
            DemoModel("anthropic", "claude-sonnet-4-5", "sk-ant-1", "ANTHROPIC_API_KEY"),
        ),
    ],
)
def test_the_model_comes_from_the_environment(environ, expected):
    assert demo_model(environ) == expected


def test_the_label_names_the_variable_not_the_key():
    label = demo_model({"OPENAI_API_KEY": "sk-secret-value"}).label
    assert label == "openai/gpt-4.1-mini (key from OPENAI_API_KEY)"


def _state(context, workspace_id: str, agent_id: str) -> tuple[str, str, str | None, int]:
    with context.database.session() as session:
        agent = session.get(Agent, agent_id)
        endpoint = session.get(ModelEndpoint, agent.model_endpoint_id)
        key = context.secrets.get(session, model_endpoints.OWNER_KIND, endpoint.id, "api_key")
        count = len(
            session.scalars(
                select(ModelEndpoint).where(ModelEndpoint.workspace_id == workspace_id)
            ).all()
        )
        return endpoint.provider, endpoint.model, key, count


def test_the_demo_agent_follows_the_chosen_model(context):
    ws, _key, agent, _ep = ensure_demo_crew(context)
    assert _state(context, ws, agent) == ("scripted", "script", None, 1)
    real = DemoModel("anthropic", "claude-sonnet-4-5", "sk-ant-first", "ANTHROPIC_API_KEY")
    ws2, _key, agent2, endpoint = ensure_demo_crew(context, real)
    assert (ws2, agent2) == (ws, agent)
    assert _state(context, ws, agent) == ("anthropic", "claude-sonnet-4-5", "sk-ant-first", 2)
    again = DemoModel("anthropic", "claude-opus-4-1", "sk-ant-second", "ANTHROPIC_API_KEY")
    assert ensure_demo_crew(context, again)[3] == endpoint
    assert _state(context, ws, agent) == ("anthropic", "claude-opus-4-1", "sk-ant-second", 2)
    ensure_demo_crew(context, demo_model({}))
    assert _state(context, ws, agent) == ("scripted", "script", None, 2)
