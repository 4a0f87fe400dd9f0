"""`python -m actana.runtime`: one run, inside its sandbox, from tokens to terminal line.

Order matters. The one-time tokens leave the environment before anything else happens (no child
may ever inherit them) and the process is made non-inspectable; then stdout is taken over for
events. Then the four phases the sandbox measures run — bootstrap, materialization, execution,
result_upload — each closing with its phase line, and exactly one terminal line (`result` or
`error`) ends the output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from actana.protocol.events import ErrorEvent, ResultEvent, Usage
from actana.protocol.payloads import ENV_CHANNEL, ENV_WORKSPACE_DIR, ConfigPayload
from actana.runtime.agent import AgentLoop
from actana.runtime.bootstrap import bootstrap, materialize
from actana.runtime.channel import Channel
from actana.runtime.emit import Deadline, Emitter, RunFailure, describe
from actana.runtime.hardening import Tokens, forbid_inspection, set_child_subreaper, take_tokens
from actana.runtime.mcp.manager import McpTools, start_mcp
from actana.runtime.netproxy import egress_socket_path, install_proxy_env
from actana.runtime.skills import skills_root, system_prompt_section, usable_skills
from actana.runtime.tools.base import Tool, ToolContext
from actana.runtime.tools.registry import Toolbox, build_tools, offered_tools
from actana.runtime.upload import upload_outputs

USAGE = """\
usage: python -m actana.runtime

Runs one agent run inside its sandbox and prints NDJSON events on stdout. Started by a sandbox
backend with a scrubbed environment:

  ACTANA_CHANNEL    unix:/abs/path.sock or http://127.0.0.1:PORT (the sandbox API)
  OTP_SETUP         one-time token for GET /sandbox/v1/env
  OTP_RUN           one-time token for GET /sandbox/v1/config
  OTP_UPLOAD        one-time token for POST /sandbox/v1/results
  WORKSPACE_DIR     the workspace (also the working directory); outputs go in assets/
  ACTANA_RUN_ID     the run's id
"""


class Runtime:
    """One run: the phases, their outcome, and the terminal line."""

    def __init__(self, emitter: Emitter, tokens: Tokens, channel: Channel, workspace: str) -> None:
        """Hold what the run needs; `workspace` is the resolved workspace directory."""
        self.emitter = emitter
        self.tokens = tokens
        self.channel = channel
        self.workspace = workspace
        self.usage = Usage()
        self.rounds = 0

    def run(self) -> int:
        """Run every phase and emit the terminal line.

        Returns:
            The process exit status: 0 after `result`, 1 after `error`.
        """
        message = ""
        failure: RunFailure | None = None
        executed = False
        mcp = McpTools()
        try:
            with self.emitter.phase("bootstrap"):
                config = bootstrap(self.channel, self.tokens, self.workspace, self.emitter)
            with self.emitter.phase("materialization") as report:
                report.message = materialize(self.workspace)
                mcp = start_mcp(
                    config,
                    self.channel,
                    self.emitter,
                    Deadline(config.limits.deadline_ms),
                    self.workspace,
                )
                # The tokens are long gone: child processes (tools) get the `mcp` shim this way.
                os.environ.update(mcp.env)
            executed = True
            message = self._execute(config, mcp.tools)
        except RunFailure as exc:
            failure = exc
        except Exception as exc:
            failure = RunFailure("internal", describe(exc))
            # The event says what happened; the traceback, for whoever debugs it, goes to stderr.
            import traceback  # here, not at the top: only this path needs it

            traceback.print_exc()
        finally:
            mcp.close()  # every stdio MCP server's process group is killed here
        if executed:
            self._upload(failure)
        if failure is None:
            self.emitter.emit(ResultEvent(message=message, usage=self.usage, rounds=self.rounds))
            return 0
        self.emitter.emit(
            ErrorEvent(failure.code, failure.message, usage=self.usage, rounds=self.rounds)
        )
        return 1

    def _tool_context(self, config: ConfigPayload) -> ToolContext:
        """What the run's tools share: the skills that made it into the sandbox, the network
        policy and the egress proxy's socket (both next to the channel socket)."""
        address = os.environ.get(ENV_CHANNEL, "")
        root = skills_root(address)
        skills, missing = usable_skills(config.skills, root)
        if missing:
            self.emitter.log(
                "warn", f"skills left out (their files did not reach the sandbox): {missing}"
            )
        return ToolContext(
            network=config.network,
            egress_socket=egress_socket_path(address),
            skills=skills,
            skills_root=root,
        )

    def _execute(self, config: ConfigPayload, mcp_tools: list[Tool]) -> str:
        deadline = Deadline(config.limits.deadline_ms)
        context = self._tool_context(config)
        offered, unknown = offered_tools(config.tools, build_tools(config.limits), context)
        if unknown:
            self.emitter.log("warn", f"the run config names tools this runtime lacks: {unknown}")
        toolbox = Toolbox(offered + mcp_tools, self.workspace, deadline.remaining, context)
        section = system_prompt_section(context.skills, context.skills_root)
        if section:  # progressive disclosure: names and descriptions only, bodies on request
            prompt = config.agent.system_prompt
            config.agent.system_prompt = f"{prompt}\n\n{section}" if prompt else section
        loop = AgentLoop(self.channel, config, toolbox, deadline, self.emitter)
        try:
            with self.emitter.phase("execution"):
                return loop.run()
        finally:
            self.usage, self.rounds = loop.usage, loop.rounds

    def _upload(self, failure: RunFailure | None) -> None:
        with self.emitter.phase("result_upload") as report:
            if failure is not None and failure.code == "timeout":
                # The worker kills the sandbox at the deadline: say how the run ended first.
                report.message, report.outcome = "result upload skipped: deadline passed", "skipped"
                return
            try:
                upload_outputs(
                    self.channel,
                    self.tokens.upload,
                    Path(self.workspace) / "assets",
                    self.emitter,
                    report,
                )
            except Exception as exc:  # never let the upload change how the run ended
                self.emitter.log("warn", f"the output files could not be uploaded: {describe(exc)}")
                report.message, report.outcome, report.level = (
                    "result upload failed",
                    "error",
                    "warn",
                )
            finally:
                self.tokens.upload = ""


def main(argv: list[str]) -> int:
    """Entry point of `python -m actana.runtime`.

    Args:
        argv: command-line arguments (only `--help` is accepted).

    Returns:
        The exit status.
    """
    tokens = take_tokens()  # first of all: see actana.runtime.hardening
    forbid_inspection()
    set_child_subreaper(True)
    if argv:
        if argv[0] in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        sys.stderr.write(USAGE)
        return 2
    emitter = Emitter.from_stdout()
    try:
        channel = Channel(os.environ.get(ENV_CHANNEL, ""))
        workspace = Path(os.environ[ENV_WORKSPACE_DIR]).resolve()
        if not workspace.is_dir():
            raise ValueError(f"WORKSPACE_DIR is not a directory: {workspace}")
        missing = tokens.missing()
        if missing:
            raise ValueError(f"missing one-time tokens: {', '.join(missing)}")
    except (KeyError, ValueError) as exc:
        detail = f"{exc.args[0]} is not set" if isinstance(exc, KeyError) else str(exc)
        emitter.emit(ErrorEvent("sandbox_failed", f"the sandbox was started wrongly: {detail}"))
        return 1
    try:  # before the setup script: it may install packages through the proxy
        install_proxy_env(os.environ.get(ENV_CHANNEL, ""))
    except OSError as exc:
        emitter.log("warn", f"no loopback forwarder to the egress proxy: {describe(exc)}")
    return Runtime(emitter, tokens, channel, str(workspace)).run()
