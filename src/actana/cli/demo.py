"""`actana demo`: a dev-mode server, a demo workspace and agent, and one real run of it.

The agent's model is the offline `scripted` one, unless a provider key is in the environment
(ANTHROPIC_API_KEY, OPENAI_API_KEY or GEMINI_API_KEY, first one set wins): then it talks to that
provider, with a default model that ACTANA_DEMO_MODEL overrides. The key is stored encrypted as
the demo endpoint's key; the sandbox never sees it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
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
DEMO_PROMPT = (
    "Write a one-line greeting to assets/hello.txt, check it with bash (wc -c), "
    "and tell me in one sentence what you did."
)
PROVIDER_KEYS = (
    ("ANTHROPIC_API_KEY", "anthropic", "claude-sonnet-4-5"),
    ("OPENAI_API_KEY", "openai", "gpt-4.1-mini"),
    ("GEMINI_API_KEY", "gemini", "gemini-2.5-flash"),
)
"""Environment variable, provider and default model, in order of preference."""
REAL_MODEL_MIN_TIMEOUT_SEC = 120
"""A real model thinks for seconds per turn: the demo gives its run at least this long."""


@dataclass(frozen=True)
class DemoModel:
    """The model the demo agent uses: `scripted`, or a provider with the key from `env_var`."""

    provider: str
    model: str
    api_key: str | None = None
    env_var: str | None = None

    @property
    def label(self) -> str:
        if self.env_var is None:
            return "scripted (offline, plays a fixed script)"
        return f"{self.provider}/{self.model} (key from {self.env_var})"


def demo_model(environ: Mapping[str, str]) -> DemoModel:
    """The provider whose key is set (the first of PROVIDER_KEYS), else the scripted model."""
    for env_var, provider, default in PROVIDER_KEYS:
        key = environ.get(env_var, "").strip()
        if key:
            model = environ.get("ACTANA_DEMO_MODEL", "").strip() or default
            return DemoModel(provider, model, key, env_var)
    return DemoModel("scripted", "script")


def ensure_demo_crew(
    context: AppContext, model: DemoModel | None = None
) -> tuple[str, str, str, str]:
    """Create (once) the demo workspace, its model endpoint and an agent on it.

    The endpoint is the scripted one, or (for a real `model`) one named after the provider,
    whose model and key are brought up to date; the agent is pointed at it.
    Returns the workspace id, a fresh API key, the agent id and the endpoint id.
    """
    model = model or DemoModel("scripted", "script")
    with context.database.session() as session:
        workspace = session.scalar(select(Workspace).where(Workspace.name == "demo"))
        if workspace is None:
            workspace, api_key = create_workspace(session, "demo", actor="demo")
        else:
            _key, api_key = issue_api_key(session, workspace.id, name="demo", actor="demo")
        name = model.provider
        endpoint = session.scalar(
            select(ModelEndpoint).where(
                ModelEndpoint.workspace_id == workspace.id, ModelEndpoint.name == name
            )
        )
        if endpoint is None:
            fields: dict[str, object] = {"name": name, "provider": model.provider}
            if model.api_key is None:
                fields["script"] = DEMO_SCRIPT
            else:
                fields.update(model=model.model, api_key=model.api_key)
            body = model_endpoints.ModelEndpointCreate.model_validate(fields)
            endpoint = model_endpoints.create(context, session, workspace.id, body, "demo")
            session.flush()
        elif model.api_key is not None:
            update = model_endpoints.ModelEndpointUpdate.model_validate(
                {"model": model.model, "api_key": model.api_key}
            )
            model_endpoints.update(context, session, workspace.id, endpoint.id, update, "demo")
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
        elif agent.model_endpoint_id != endpoint.id:
            agent.model_endpoint_id = endpoint.id
        return workspace.id, api_key, agent.id, endpoint.id


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
    model = demo_model(os.environ)
    if model.api_key is not None:
        settings.max_execution_time_sec = max(
            settings.max_execution_time_sec, REAL_MODEL_MIN_TIMEOUT_SEC
        )
    context = start_context(settings)
    workspace_id, api_key, agent_id, endpoint_id = ensure_demo_crew(context, model)
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
    console.print(f"model: {model.label}", highlight=False, soft_wrap=True)
    client = ApiClient(base, workspace_id, api_key)
    if model.api_key is not None:
        check = client.post(f"/model-endpoints/{endpoint_id}/test")
        if not check["ok"]:
            server.should_exit = True
            thread.join(timeout=30)
            status = f" (HTTP {check['status']})" if check.get("status") else ""
            fail(f"the {model.provider} endpoint does not work{status}: {check['error']}")
        console.print(
            f"endpoint test: ok in {check['latency_ms']} ms; the key stays on the server, "
            "the sandbox never sees it\n",
            highlight=False,
        )
    else:
        console.print(
            "  (set ANTHROPIC_API_KEY, OPENAI_API_KEY or GEMINI_API_KEY for a real model)\n",
            highlight=False,
        )
    run = client.post(f"/agents/{agent_id}/runs", json={"prompt": DEMO_PROMPT})
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
  Web UI:   {base}/ui/  (sign in with the API key above)

Use a real model: run the demo again with ANTHROPIC_API_KEY, OPENAI_API_KEY or GEMINI_API_KEY
set (ACTANA_DEMO_MODEL picks the model), or create a model endpoint (anthropic, openai, gemini or
openai_compatible), test it, and point the agent at it:
  POST  {base}/api/v1/workspaces/{workspace_id}/model-endpoints/<id>/test
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
