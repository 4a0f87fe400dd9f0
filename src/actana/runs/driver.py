"""Drive one claimed run through the nine phases, from provisioning to cleanup.

Each phase writes exactly one `log` line with its duration and outcome (the four phases inside
the sandbox are reported by the runtime and filled in here if it never did). Cleanup always runs
and always removes the sandbox; the terminal line is written last, after cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from anyio import to_thread

from actana.api.context import AppContext
from actana.db.models import Agent, ModelEndpoint, Run, utcnow
from actana.protocol.payloads import (
    ENV_CHANNEL,
    ENV_OTP_RUN,
    ENV_OTP_SETUP,
    ENV_OTP_UPLOAD,
    ENV_RUN_ID,
)
from actana.runs import egress, queue, storage
from actana.runs.backends import SandboxBackends, sandbox_limits
from actana.runs.chain import run_status
from actana.runs.channel import RunChannel
from actana.runs.ingest import RunRecorder, parse_sandbox_line
from actana.runs.lines import capped_lines
from actana.runs.skills import cache_for, materialise_skills
from actana.sandboxes import (
    OutputLimitExceededError,
    SandboxBackend,
    SandboxError,
    SandboxSpec,
)
from actana.security import otp

log = logging.getLogger(__name__)
CANCEL_POLL_SEC = 0.25
SLOT_POLL_SEC = 0.2
EXIT_GRACE_SEC = 5.0


class PhaseFailed(Exception):
    """A phase could not complete; `code` and `message` become the run's error line."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Outcome:
    code: str | None = None
    message: str | None = None


class RunDriver:
    """Runs one claimed run; `drive()` never raises for run-level failures."""

    def __init__(
        self,
        context: AppContext,
        sandbox_app: Any,
        backends: SandboxBackends,
        worker_id: str,
        run_id: str,
    ) -> None:
        self.context = context
        self.backends = backends
        self.backend: SandboxBackend | None = None
        self.notice = ""
        self.settings = context.settings
        self.sandbox_app = sandbox_app
        self.worker_id = worker_id
        self.run_id = run_id
        self.outcome = _Outcome()
        self.sandbox: Any = None
        self.channel: RunChannel | None = None
        self.tokens: dict[str, str] = {}
        self.sandbox_limits = sandbox_limits(context.settings)
        self.terminal_seen = asyncio.Event()

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await to_thread.run_sync(fn, *args)

    def _load(self) -> Run:
        with self.context.database.session() as session:
            run = session.get(Run, self.run_id)
            assert run is not None
            return run

    async def drive(self) -> None:
        run = await self._db(self._load)
        directory = storage.run_dir(self.settings, run.workspace_id, run.id)
        directory.mkdir(parents=True, exist_ok=True)
        self.recorder = RunRecorder(run.id, directory)
        self.context.live.register(run.id, self.recorder)
        cancel = self.context.live.cancel_event(run.id)
        try:
            await self._run_phases(run, cancel)
        except Exception as exc:  # a bug in the driver must still end the run cleanly
            log.exception("run %s: driver failed", run.id)
            self._fail("internal", f"worker error: {type(exc).__name__}")
        finally:
            await self._cleanup()
            await self._finish(run)
            self.context.live.unregister(run.id)

    def _fail(self, code: str, message: str) -> None:
        if self.outcome.code is None:
            self.outcome.code, self.outcome.message = code, message

    async def _phase(self, name: str, body: Callable[[], Awaitable[str]]) -> bool:
        """Run one worker phase, record its line; False when it (or an earlier one) failed."""
        if self.outcome.code is not None:
            self.recorder.phase(name, 0, "skipped", f"{name} skipped")
            return False
        started = time.monotonic()
        try:
            message = await body()
            outcome = "ok"
        except PhaseFailed as exc:
            self._fail(exc.code, exc.message)
            message, outcome = exc.message, "failed"
        except SandboxError as exc:
            message, outcome = f"the sandbox failed: {exc}", "failed"
            self._fail("sandbox_failed", message)
        except Exception as exc:
            # Still exactly one line for the phase; the traceback goes to the server log.
            log.exception("run %s: phase %s failed", self.run_id, name)
            message, outcome = f"worker error: {type(exc).__name__}", "failed"
            self._fail("internal", message)
        elapsed = int((time.monotonic() - started) * 1000)
        self.recorder.phase(name, elapsed, outcome, message)
        return outcome == "ok"

    async def _run_phases(self, run: Run, cancel: asyncio.Event) -> None:
        await self._phase("provisioning", lambda: self._provision(run))
        await self._phase("otp_rotation", lambda: self._rotate_tokens(run))
        await self._phase("queue_acquisition", lambda: self._acquire_slot(run, cancel))
        if await self._phase("container_creation", lambda: self._create_sandbox(run)):
            await self._execute(run, cancel)

    async def _provision(self, run: Run) -> str:
        def check() -> str:
            with self.context.database.session() as session:
                agent = session.get(Agent, run.agent_id)
                if agent is None:
                    raise PhaseFailed("sandbox_failed", "the agent was deleted before the run")
                endpoint = session.get(
                    ModelEndpoint, run.model_endpoint_id or agent.model_endpoint_id
                )
                if endpoint is None:
                    raise PhaseFailed("sandbox_failed", "the agent's model endpoint is gone")
                return f"agent {agent.name}, model {endpoint.provider}/{endpoint.model}"

        choice = await self._db(self.backends.choose, run.flavor)
        self.backend, self.notice = choice.backend, choice.notice
        got = self.backend.name if self.backend is not None else "none"
        # The run's first line says which sandbox and isolation it will get (and, when it is
        # not the flavor asked for, why); container_creation confirms or fails.
        return (
            f"{await self._db(check)}; sandbox {run.flavor} -> {got}, isolation {choice.isolation}"
        ) + (f"; {self.notice}" if self.notice else "")

    async def _rotate_tokens(self, run: Run) -> str:
        not_after = utcnow() + timedelta(
            seconds=self.settings.queue_wait_max_sec + run.timeout_sec + 120
        )

        def issue() -> dict[str, str]:
            with self.context.database.session() as session:
                return otp.issue_run_tokens(session, run.id, not_after=not_after)

        self.tokens = await self._db(issue)
        return "issued OTP_SETUP, OTP_RUN, OTP_UPLOAD"

    async def _acquire_slot(self, run: Run, cancel: asyncio.Event) -> str:
        deadline = time.monotonic() + self.settings.queue_wait_max_sec
        while True:
            got = await self._db(
                lambda: queue.try_acquire_slot(
                    self.context.database,
                    run.id,
                    total=self.settings.max_concurrent_runs,
                    per_workspace=self.settings.max_concurrent_runs_per_workspace,
                )
            )
            if got:
                return "sandbox slot acquired"
            if await self._cancel_requested(cancel):
                raise PhaseFailed("cancelled", "cancelled while waiting for a sandbox slot")
            if time.monotonic() > deadline:
                raise PhaseFailed("sandbox_failed", "no sandbox slot became free in time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cancel.wait(), SLOT_POLL_SEC)

    async def _create_sandbox(self, run: Run) -> str:
        if self.backend is None:
            raise PhaseFailed("sandbox_failed", self.notice)
        policy = await self._db(self._egress_policy, run)
        proxy = egress.EgressProxy(
            policy, egress.limits_from(self.settings), self.recorder.accept_worker_log
        )
        self.channel = RunChannel(self.sandbox_app, run.id, egress=proxy)
        await self.channel.start()
        # Skill bundles go next to the socket before any backend sees the directory.
        for level, message in await self._db(self._materialise_skills, run):
            self.recorder.accept_worker_log(level, message)
        env = {
            ENV_CHANNEL: self.channel.address,
            ENV_OTP_SETUP: self.tokens[otp.SETUP],
            ENV_OTP_RUN: self.tokens[otp.RUN],
            ENV_OTP_UPLOAD: self.tokens[otp.UPLOAD],
            ENV_RUN_ID: run.id,
        }
        spec = SandboxSpec(
            run_id=run.id,
            worker_id=self.worker_id,
            command=self._runtime_command(),
            env=env,
            channel_socket=self.channel.socket_path,
            limits=self.sandbox_limits,
        )
        self.sandbox = await self.backend.create(spec)
        if (unenforced := egress.unenforced(policy, self.sandbox.isolation)) is not None:
            if unenforced[0] == "error":
                raise PhaseFailed("sandbox_failed", unenforced[1])
            self.recorder.accept_worker_log(*unenforced)
        self.tokens = {}  # handed over; the worker keeps no copy
        await self._db(self._copy_inputs, run)
        started = utcnow()
        deadline = started + timedelta(seconds=run.timeout_sec)
        await self._db(self._mark_started, run, started, deadline)
        await self.sandbox.start()
        self.deadline = time.monotonic() + run.timeout_sec
        notice = f"{self.notice}; " if self.notice else ""
        return f"{notice}{self.sandbox.backend} sandbox started, isolation {self.sandbox.isolation}"

    def _materialise_skills(self, run: Run) -> list[tuple[str, str]]:
        assert self.channel is not None
        with self.context.database.session() as session:
            agent = session.get(Agent, run.agent_id)
            if agent is None:  # deleted since provisioning: the config step will fail the run
                return []
            cache = cache_for(self.settings.data_dir)
            return materialise_skills(session, agent, self.channel.directory, cache)

    def _egress_policy(self, run: Run) -> egress.EgressPolicy:
        with self.context.database.session() as session:
            return egress.run_policy(self.settings, session, run)

    def _runtime_command(self) -> list[str]:
        if self.settings.runtime_command:
            return list(self.settings.runtime_command)
        assert self.backend is not None  # container_creation runs only with a backend
        return self.backend.runtime_command()

    def _copy_inputs(self, run: Run) -> None:
        """Put the run's input files into the sandbox's $WORKSPACE_DIR/assets/ (trusted side;
        a container's staging folder is handed over at start)."""
        source = storage.inputs_dir(self.settings, run.workspace_id, run.id)
        target = self.sandbox.workspace / "assets"
        target.mkdir(exist_ok=True)
        if source.is_dir():
            for item in sorted(source.iterdir()):
                if item.is_file() and not item.is_symlink():
                    shutil.copyfile(item, target / item.name, follow_symlinks=False)

    def _mark_started(self, run: Run, started: Any, deadline: Any) -> None:
        with self.context.database.session() as session:
            row = session.get(Run, run.id)
            assert row is not None
            row.started_at, row.deadline_at = started, deadline
            row.sandbox_backend = self.sandbox.backend
            row.isolation = self.sandbox.isolation

    async def _cancel_requested(self, cancel: asyncio.Event) -> bool:
        if cancel.is_set():
            return True

        def flag() -> bool:
            with self.context.database.session() as session:
                row = session.get(Run, self.run_id)
                return bool(row and row.cancel_requested)

        return bool(await self._db(flag))

    async def _pump(self) -> None:
        """Feed the sandbox's stdout, line by line, through the hostile-input parser."""
        async for item in capped_lines(
            self.sandbox.stdout_chunks(), self.settings.max_event_line_bytes
        ):
            for event in parse_sandbox_line(item):
                self.recorder.accept(event)
            if self.recorder.has_terminal():
                self.terminal_seen.set()

    async def _execute(self, run: Run, cancel: asyncio.Event) -> None:
        """Let the sandbox run until it ends, the deadline passes, or the run is cancelled."""
        pump = asyncio.create_task(self._pump())
        cancelled = asyncio.create_task(cancel.wait())
        finished = asyncio.create_task(self.terminal_seen.wait())
        try:
            while not pump.done():
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    self._fail("timeout", f"execution exceeded {run.timeout_sec} s")
                    break
                done, _ = await asyncio.wait(
                    {pump, cancelled, finished},
                    timeout=min(remaining, CANCEL_POLL_SEC),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if pump in done or finished in done:
                    break
                if await self._cancel_requested(cancel):
                    self._fail("cancelled", "cancelled by request")
                    break
        finally:
            cancelled.cancel()
            finished.cancel()
        if not pump.done():
            # Stop ingesting first: a sandbox flooding stdout would otherwise starve the kill's
            # /proc scan (it runs in a thread) of the GIL and push the end past the deadline.
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            if self.outcome.code is None and self.recorder.has_terminal():
                # The runtime has said its last word: waiting for its process (and a container)
                # to wind down would only delay the run's end; cleanup removes what is left.
                return
            await self.sandbox.kill()
        elif isinstance(pump.exception(), OutputLimitExceededError):
            limit = self.sandbox_limits.output_bytes
            self._fail("sandbox_failed", f"the sandbox wrote more than {limit} bytes to stdout")
        elif (error := pump.exception()) is not None:
            raise error
        try:
            await self.sandbox.wait(timeout=EXIT_GRACE_SEC)
        except TimeoutError:
            self.recorder.accept_worker_log("warn", "the sandbox did not exit after its last line")
        if self.outcome.code is None and not self.recorder.has_terminal():
            self._fail("sandbox_failed", "the sandbox exited without a terminal line")

    async def _cleanup(self) -> None:
        started = time.monotonic()
        problems: list[str] = []
        if self.sandbox is not None:
            try:
                await self.sandbox.remove()
            except Exception as exc:
                problems.append(f"sandbox removal failed: {type(exc).__name__}")
                log.exception("run %s: sandbox removal failed", self.run_id)
        if self.channel is not None:
            await self.channel.stop()

        def release() -> None:
            with self.context.database.session() as session:
                otp.revoke_run_tokens(session, self.run_id)
                row = session.get(Run, self.run_id)
                if row is not None:
                    row.slot_acquired = False

        await self._db(release)
        self.recorder.fill_missing_runtime_phases()
        elapsed = int((time.monotonic() - started) * 1000)
        message = "; ".join(problems) or "sandbox removed, tokens revoked, slot released"
        self.recorder.phase("cleanup", elapsed, "failed" if problems else "ok", message)

    async def _finish(self, run: Run) -> None:
        """Store the final status, then write the terminal line, then the chain hash."""
        current: Run = await self._db(self._load)
        usage = {
            "input_tokens": current.input_tokens,
            "output_tokens": current.output_tokens,
            "model_calls": current.model_calls,
        }
        error = (self.outcome.code, self.outcome.message or "") if self.outcome.code else None
        terminal = self.recorder.terminal_preview(
            error=error, usage=usage, rounds=current.model_calls
        )

        def store(chain: str | None) -> None:
            with self.context.database.session() as session:
                row = session.get(Run, run.id)
                assert row is not None
                if chain is not None:
                    row.chain = chain
                    return
                row.status = run_status(terminal)
                row.ended_at = utcnow()
                row.rounds = current.model_calls
                if terminal["type"] == "result":
                    row.result_message = str(terminal.get("message", ""))
                else:
                    row.error_code = str(terminal.get("code"))
                    row.error_message = str(terminal.get("message", ""))

        await self._db(store, None)
        summary = self.recorder.finish(
            error=error, files=current.output_files, usage=usage, rounds=current.model_calls
        )
        await self._db(store, summary.chain)
