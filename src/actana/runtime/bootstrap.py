"""The `bootstrap` phase: environment, setup script, run config; and `materialization`.

Bootstrap redeems OTP_SETUP for the environment (variables + setup script), exports the
variables so that the setup script and every tool see them, runs the setup script, then redeems
OTP_RUN for the run's config. Each token is forgotten as soon as it is spent. Values of
environment variables are never logged: some of them are secrets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from actana.protocol.payloads import TOKEN_ENV_VARS, ConfigPayload, EnvPayload
from actana.runtime.channel import CONFIG_PATH, ENV_PATH, Channel, ChannelError
from actana.runtime.decode import DecodeError, decode
from actana.runtime.emit import Deadline, Emitter, RunFailure
from actana.runtime.hardening import Tokens
from actana.runtime.process import run_captured, shell_argv
from actana.runtime.upload import collect_files

T = TypeVar("T")

SETUP_TIMEOUT_SEC = 300.0
SETUP_LOG_LINES = 500
SETUP_LINE_CHARS = 4096
_SETUP_CAPTURE_BYTES = SETUP_LOG_LINES * SETUP_LINE_CHARS
_LISTED_INPUTS = 20


def _fetch(channel: Channel, path: str, token: str, cls: type[T], what: str) -> T:
    try:
        return decode(cls, channel.get_json(path, token), what)
    except ChannelError as exc:
        raise RunFailure("sandbox_failed", f"could not fetch the {what}: {exc}") from None
    except DecodeError as exc:
        raise RunFailure("sandbox_failed", f"the {what} is malformed: {exc}") from None


def export_variables(variables: dict[str, str], emitter: Emitter) -> None:
    """Put the environment's variables into os.environ (and so into every child's environment).

    Names the OS cannot hold, and the names of the one-time tokens, are skipped with a warning
    that gives the names only.
    """
    skipped = []
    for name, value in variables.items():
        if not name or "=" in name or "\x00" in name or "\x00" in value or name in TOKEN_ENV_VARS:
            skipped.append(name)
            continue
        os.environ[name] = value
    if skipped:
        emitter.log("warn", f"environment variables not exported (invalid names): {skipped}")


def _log_output(text: str, emitter: Emitter) -> None:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines[:SETUP_LOG_LINES]:
        line = line.removesuffix("\r")
        emitter.log(
            "info", line if len(line) <= SETUP_LINE_CHARS else line[:SETUP_LINE_CHARS] + "…"
        )
    if len(lines) > SETUP_LOG_LINES:
        emitter.log("info", f"… truncated ({len(lines) - SETUP_LOG_LINES} more lines)")


def run_setup_script(script: str, workspace: str, deadline: Deadline, emitter: Emitter) -> None:
    """Run the environment's setup script; its output becomes `log` lines.

    Raises:
        RunFailure: `sandbox_failed` when it fails or takes over SETUP_TIMEOUT_SEC, `timeout`
            when the run's deadline cut it short.
    """
    deadline.check("the setup script")
    limit = min(SETUP_TIMEOUT_SEC, deadline.remaining())
    try:
        captured = run_captured(
            shell_argv(script),
            cwd=workspace,
            timeout=limit,
            cap=_SETUP_CAPTURE_BYTES,
            merge_stderr=True,  # one stream keeps the script's own order of output and errors
        )
    except OSError as exc:
        raise RunFailure("sandbox_failed", f"the setup script could not start: {exc}") from None
    text = captured.stdout.decode("utf-8", "replace")
    if captured.stdout_total > len(captured.stdout):
        text += f"\n… truncated ({captured.stdout_total - len(captured.stdout)} more bytes)\n"
    _log_output(text, emitter)
    if captured.timed_out:
        if deadline.expired():
            raise RunFailure("timeout", "the run's deadline passed during the setup script")
        raise RunFailure("sandbox_failed", f"the setup script timed out after {limit:g} s")
    if captured.exit_code != 0:
        raise RunFailure(
            "sandbox_failed", f"the setup script failed with exit code {captured.exit_code}"
        )


def bootstrap(channel: Channel, tokens: Tokens, workspace: str, emitter: Emitter) -> ConfigPayload:
    """Fetch the environment, run the setup script, fetch the config.

    Args:
        channel: the sandbox API client.
        tokens: the one-time tokens; `setup` and `run` are blanked once used.
        workspace: the workspace directory (the setup script's cwd).
        emitter: where the setup script's output goes.

    Returns:
        The run's config (its `session_token` stays in memory only).

    Raises:
        RunFailure: `sandbox_failed` (or `timeout`) when any step fails.
    """
    env = _fetch(channel, ENV_PATH, tokens.setup, EnvPayload, "environment")
    tokens.setup = ""
    export_variables(env.variables, emitter)
    if env.setup_script.strip():
        run_setup_script(env.setup_script, workspace, Deadline(env.deadline_ms), emitter)
    config = _fetch(channel, CONFIG_PATH, tokens.run, ConfigPayload, "run config")
    tokens.run = ""
    return config


def materialize(workspace: str) -> str:
    """Make sure `assets/` exists and describe the input files found there.

    Returns:
        The message of the phase line.
    """
    assets = Path(workspace) / "assets"
    assets.mkdir(exist_ok=True)
    files, total = collect_files(assets, _LISTED_INPUTS)
    if not files:
        return "materialization done: assets/ holds no input files"
    shown = ", ".join(name for name, _ in files)
    more = f" and {total - len(files)} more" if total > len(files) else ""
    return f"materialization done: {total} input file(s) in assets/: {shown}{more}"
