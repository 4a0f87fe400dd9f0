"""`actana demo`: a dev-mode server with a ready demo workspace, agent and instructions."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn
from sqlalchemy import select

from actana.api.app import create_app
from actana.api.context import AppContext
from actana.cli.common import console, load_settings, start_context
from actana.crew import agents, model_endpoints
from actana.crew.workspaces import create_workspace
from actana.db.models import Agent, ModelEndpoint, Workspace
from actana.security.api_keys import issue_api_key

DEMO_SCRIPT = [
    {
        "tool_calls": [
            {
                "name": "write_file",
                "args": {"path": "assets/hello.txt", "content": "Hello from an Actana sandbox\n"},
            }
        ]
    },
    {"tool_calls": [{"name": "bash", "args": {"command": "wc -c assets/hello.txt && uname -s"}}]},
    {"text": "I wrote assets/hello.txt and checked it with wc."},
]


def ensure_demo_crew(context: AppContext) -> tuple[str, str, str]:
    """Create (once) the demo workspace, a scripted model endpoint and an agent.

    Returns the workspace id, a fresh API key, and the agent id.
    """
    with context.database.session() as session:
        workspace = session.scalar(select(Workspace).where(Workspace.name == "demo"))
        if workspace is None:
            workspace, api_key = create_workspace(session, "demo", actor="demo")
        else:
            _key, api_key = issue_api_key(session, workspace.id, name="demo", actor="demo")
        endpoint = session.scalar(
            select(ModelEndpoint).where(
                ModelEndpoint.workspace_id == workspace.id, ModelEndpoint.name == "scripted"
            )
        )
        if endpoint is None:
            body = model_endpoints.ModelEndpointCreate.model_validate(
                {"name": "scripted", "provider": "scripted", "script": DEMO_SCRIPT}
            )
            endpoint = model_endpoints.create(context, session, workspace.id, body, "demo")
            session.flush()
        agent = session.scalar(
            select(Agent).where(Agent.workspace_id == workspace.id, Agent.name == "hello")
        )
        if agent is None:
            agent_body = agents.AgentCreate(
                name="hello",
                system_prompt="You are a careful assistant working in a sandbox.",
                model_endpoint_id=endpoint.id,
                sandbox_flavor="native",
            )
            agent = agents.create(context, session, workspace.id, agent_body, "demo")
            session.flush()
        return workspace.id, api_key, agent.id


def demo(
    port: Annotated[int, typer.Option(help="Port to serve the demo on")] = 8321,
    serve: Annotated[bool, typer.Option(help="Keep serving after the set-up")] = True,
) -> None:
    """Start a dev-mode server with a demo workspace and agent, and print how to use it."""
    settings = load_settings()
    settings.dev_mode = True
    settings.port = port
    context = start_context(settings)
    workspace_id, api_key, agent_id = ensure_demo_crew(context)
    base = f"http://{settings.host}:{settings.port}"
    console.print(
        f"""[bold]Actana demo[/] (dev mode; data in {settings.data_dir.resolve()})

  workspace  {workspace_id}
  API key    {api_key}
  agent      hello ({agent_id}), scripted model, native sandbox

Try it from another terminal:
  export ACTANA_KEY={api_key}
  curl -s -H "Authorization: Bearer $ACTANA_KEY" {base}/api/v1/workspaces/{workspace_id}/agents
  curl -s {base}/readyz
  open {base}/docs for the whole API
""",
        highlight=False,
    )
    if serve:
        uvicorn.run(create_app(context), host=settings.host, port=settings.port, log_level="info")
