"""`actana demo`: a dev-mode server, a demo workspace and agent, and one real run of it."""

from __future__ import annotations

import threading
import time
from typing import Annotated

import typer
import uvicorn
from sqlalchemy import select

from actana.api.app import create_app
from actana.api.context import AppContext
from actana.cli.client import ApiClient
from actana.cli.common import console, fail, load_settings, start_context
from actana.cli.runs import follow, print_summary
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
            )
            agent = agents.create(context, session, workspace.id, agent_body, "demo")
            session.flush()
        return workspace.id, api_key, agent.id


def demo(
    port: Annotated[int, typer.Option(help="Port to serve the demo on")] = 8321,
    serve: Annotated[bool, typer.Option(help="Keep serving after the demo run")] = True,
) -> None:
    """Start a dev-mode server, run the demo agent end to end in a sandbox, and keep serving."""
    settings = load_settings()
    settings.dev_mode = True
    settings.port = port
    # The demo agent is of the `container` flavor: it gets Docker when a daemon answers and the
    # image is built, else (here only: production runs fail instead) the native sandbox, and
    # both this notice and the run's log say which and why.
    settings.sandbox_fallback_native = True
    context = start_context(settings)
    workspace_id, api_key, agent_id = ensure_demo_crew(context)
    server = uvicorn.Server(
        uvicorn.Config(create_app(context), host=settings.host, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            fail(f"the server could not start on {settings.host}:{port} (is the port taken?)")
        time.sleep(0.02)
    base = f"http://{settings.host}:{port}"
    console.print(f"[bold]Actana demo[/] (dev mode; data in {settings.data_dir.resolve()})")
    choice = context.sandboxes.choose("container")
    if choice.notice:
        console.print(
            f"notice: {choice.notice}. The demo agent (flavor `container`) runs there:"
            f" {choice.isolation}\n",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(f"sandbox: docker, {choice.isolation}\n", highlight=False, soft_wrap=True)
    client = ApiClient(base, workspace_id, api_key)
    run = client.post(f"/agents/{agent_id}/runs", json={"prompt": "Say hello with a file."})
    final = follow(client, run["id"])
    print_summary(final, base)
    run_folder = settings.runs_dir.resolve() / workspace_id / run["id"]
    console.print(
        f"""
The run's own folder: {run_folder}
  stream.jsonl (the audit trail), steps.json, result.json, outputs/
  check it:  .venv/bin/actana verify {run_folder}

Try it yourself:
  export ACTANA_SERVER_URL={base} ACTANA_WORKSPACE={workspace_id} ACTANA_API_KEY={api_key}
  .venv/bin/actana run hello "hi again"
  curl -s -H "Authorization: Bearer $ACTANA_API_KEY" {base}/api/v1/workspaces/{workspace_id}/runs
  API docs: {base}/docs

Use a real model: create a model endpoint (provider anthropic, openai, gemini or
openai_compatible, with its api_key) and point the agent at it:
  PATCH {base}/api/v1/workspaces/{workspace_id}/agents/{agent_id} {{"model_endpoint_id": ...}}
""",
        highlight=False,
        soft_wrap=True,
    )
    client.close()
    if not serve:
        server.should_exit = True
        thread.join(timeout=30)
        raise typer.Exit(0 if final["status"] == "succeeded" else 1)
    console.print("Serving; Ctrl-C to stop.")
    try:
        while thread.is_alive():
            thread.join(timeout=0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(timeout=30)
