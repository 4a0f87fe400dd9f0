"""`actana run`, `actana logs`, `actana verify`, `actana worker`."""

from __future__ import annotations

import asyncio
import mimetypes
import signal
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live

from actana.cli.client import ApiClient
from actana.cli.common import console, fail, load_settings, start_context
from actana.cli.render import RunView

EXIT_CODES = {"succeeded": 0, "failed": 1, "timeout": 3, "cancelled": 4}

Server = Annotated[
    str, typer.Option(envvar="ACTANA_SERVER_URL", help="Server URL [env: ACTANA_SERVER_URL]")
]
Workspace = Annotated[
    str, typer.Option(envvar="ACTANA_WORKSPACE", help="Workspace id [env: ACTANA_WORKSPACE]")
]
ApiKey = Annotated[
    str,
    typer.Option(envvar="ACTANA_API_KEY", help="API key [env: ACTANA_API_KEY]", show_default=False),
]


def follow(client: ApiClient, run_id: str, *, live: bool = True) -> dict[str, Any]:
    """Render the run's lines as they come; return the final run record."""
    view = RunView()
    if live and console.is_terminal:
        with Live(view.render(), console=console, refresh_per_second=12) as screen:
            for event in client.events(run_id):
                view.feed(event)
                screen.update(view.render())
    else:
        for event in client.events(run_id):
            view.feed(event)
        console.print(view.render())
    run: dict[str, Any] = client.get(f"/runs/{run_id}")
    return run


def usage_line(usage: dict[str, Any]) -> str:
    """`3 model call(s), 1200 input + 85 output tokens`."""
    return (
        f"{usage.get('model_calls', 0)} model call(s), "
        f"{usage.get('input_tokens', 0)} input + {usage.get('output_tokens', 0)} output tokens"
    )


def print_summary(run: dict[str, Any], server: str) -> None:
    console.print(
        f"run {run['id']}: [bold]{run['status']}[/] in {run.get('duration_ms') or 0} ms, "
        f"{run['rounds']} round(s), {usage_line(run['usage'])}, "
        f"sandbox {run.get('sandbox_backend')} ({run.get('isolation')})",
        highlight=False,
    )
    for f in run["output_files"]:
        console.print(
            f"  output: {f['name']} ({f['size']} bytes, sha256 {f['sha256'][:12]}…)",
            highlight=False,
        )


def run(
    agent: Annotated[str, typer.Argument(help="Agent name or id")],
    prompt: Annotated[str, typer.Argument(help="What to ask the agent")],
    file: Annotated[
        list[Path] | None, typer.Option("--file", "-f", help="Input file (repeatable)")
    ] = None,
    server: Server = "http://127.0.0.1:8321",
    workspace: Workspace = "",
    api_key: ApiKey = "",
) -> None:
    """Start a run and watch it live; the exit code tells how it ended."""
    client = ApiClient(server, workspace, api_key)
    agent_id = client.resolve_agent(agent)
    with ExitStack() as stack:
        if file:
            parts = []
            for path in file:
                if not path.is_file():
                    fail(f"{path} is not a file")
                handle = stack.enter_context(path.open("rb"))
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                parts.append(("files", (path.name, handle, kind)))
            created = client.post(f"/agents/{agent_id}/runs", data={"prompt": prompt}, files=parts)
        else:
            created = client.post(f"/agents/{agent_id}/runs", json={"prompt": prompt})
    final = follow(client, created["id"])
    print_summary(final, server)
    raise typer.Exit(EXIT_CODES.get(final["status"], 1))


def logs(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    server: Server = "http://127.0.0.1:8321",
    workspace: Workspace = "",
    api_key: ApiKey = "",
    follow_live: Annotated[
        bool, typer.Option("--follow", help="Keep following a live run")
    ] = False,
) -> None:
    """Replay a run's audit trail (or follow it live with --follow)."""
    client = ApiClient(server, workspace, api_key)
    final = follow(client, run_id, live=follow_live)
    print_summary(final, server)


def verify(
    path: Annotated[
        Path | None, typer.Argument(help="A run folder or its stream.jsonl", show_default=False)
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option("--run", help="A run id: check its folder AND the hash the database kept"),
    ] = None,
) -> None:
    """Check a run's hash chain; say which line was altered, if any.

    A folder alone proves its lines are consistent with each other. Whoever can write the folder
    could rebuild the whole chain, so `--run` also compares the last line's hash with the one
    the worker stored in the database when the run ended.
    """
    from actana.runs.chain import verify as verify_path
    from actana.runs.chain import verify_recorded

    if run_id is not None:
        path, recorded = _run_folder_and_chain(run_id)
        report = verify_recorded(path, recorded)
    elif path is None:
        fail("give a run folder, its stream.jsonl, or --run RUN_ID")
    else:
        report = verify_path(path)
    if not report.ok:
        where = f"line {report.first_bad_line}: " if report.first_bad_line else ""
        fail(f"tampered: {where}{report.reason}", code=1)
    checked = " and the database's record" if run_id is not None else ""
    console.print(f"ok: {report.lines} line(s), chain intact{checked}", highlight=False)


def _run_folder_and_chain(run_id: str) -> tuple[Path, str | None]:
    from actana.db.models import Run
    from actana.runs import storage

    context = start_context()
    with context.database.session() as session:
        run = session.get(Run, run_id)
        if run is None:
            fail(f"no run {run_id!r} in this database")
        if run.chain is None:
            fail(f"run {run_id} has not ended yet ({run.status}): there is no final hash")
        return storage.run_dir(context.settings, run.workspace_id, run.id), run.chain


def worker(
    count: Annotated[
        int | None, typer.Option(min=1, help="Runs to drive at once [env: ACTANA_WORKERS]")
    ] = None,
) -> None:
    """Run workers standalone against the configured database (no HTTP API)."""
    from actana.runs.worker import WorkerPool

    settings = load_settings()
    context = start_context(settings)
    pool = WorkerPool(context, count or max(settings.workers, 1))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Stop cleanly: runs in progress end as cancelled, their sandboxes removed.
            loop.add_signal_handler(signum, stop.set)
        await pool.start()
        console.print(f"worker {pool.worker_id} running {pool.count} slot(s); Ctrl-C to stop")
        await stop.wait()
        await pool.stop()
        console.print("worker stopped")

    asyncio.run(main())
