"""A run's egress proxy: the only way out of a sandbox, served by the worker on a unix socket.

The socket (`egress.sock`) sits in the run channel's directory, which every backend shows the
sandbox read-only; the sandbox itself has no network (container: `network none`; native: a
bubblewrap net namespace). It speaks the HTTP proxy protocol, one destination per connection:

- `CONNECT host:port` opens a tunnel (https and anything else over TLS);
- `GET http://host[:port]/path` (absolute form, any method) is forwarded with `Connection:
  close`, the Host header rewritten to the URL's authority and proxy headers dropped.

Every destination is checked by `egress_policy` (name, then every resolved address), and the
connection goes to an address that was checked: never a second lookup. Refusals are answered
`403` with a one-line reason; each connection, refused or allowed, becomes one `log` line of the
run (warn / info), up to a cap, so that a flood of attempts cannot flood the audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from actana.db.models import Agent, Environment, Run
from actana.runs.egress_http import (
    ProxyRequest,
    RequestError,
    forward_head,
    parse_request,
    response,
)
from actana.runs.egress_policy import (
    EgressPolicy,
    EgressRefused,
    EgressUnresolvable,
    IPAddress,
    Resolver,
    checked_addresses,
    system_resolver,
)
from actana.settings import Settings

__all__ = [
    "EgressLimits",
    "EgressPolicy",
    "EgressProxy",
    "LogSink",
    "limits_from",
    "run_policy",
    "unenforced",
]

LogSink = Callable[[str, str], object]
"""`sink(level, message)`: writes one `log` line into the run's stream."""

_RELAY_CHUNK = 64 * 1024
# How long a refused connection is kept to read what the client still sends (see _refuse).
_LINGER_SEC = 1.0


@dataclass(frozen=True)
class EgressLimits:
    """Limits of one run's proxy (see the `egress_*` settings)."""

    connect_timeout_sec: float = 10.0
    idle_timeout_sec: float = 60.0
    max_connections: int = 32
    max_header_bytes: int = 16 * 1024
    max_log_lines: int = 200


class _Connection:
    """Byte counts and the log line of one proxied connection."""

    def __init__(self, request: ProxyRequest) -> None:
        self.request = request
        self.sent = 0  # sandbox -> destination
        self.received = 0  # destination -> sandbox
        self.address: IPAddress | None = None


class EgressProxy:
    """Serve the proxy for one run; `start` before the sandbox exists, `stop` after it is gone.

    Args:
        policy: what the run may reach.
        limits: timeouts and caps.
        log: where the run's `log` lines go (the run's recorder).
        resolver: name -> addresses (tests give their own; default: the host's resolver).
    """

    def __init__(
        self,
        policy: EgressPolicy,
        limits: EgressLimits,
        log: LogSink,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.policy = policy
        self.limits = limits
        self._log = log
        self._resolver = resolver
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0  # connections past the cap check (the cap counts these)
        self._logged = 0
        self._unlogged = 0

    async def start(self, socket_path: Path) -> None:
        """Listen on `socket_path` (created here, mode 0666: the sandbox runs as another uid,
        like the channel socket next to it; the directory's 0711 keeps others from finding it)."""
        self._server = await asyncio.start_unix_server(
            self._accept, path=str(socket_path), limit=self.limits.max_header_bytes
        )
        socket_path.chmod(0o666)

    async def stop(self) -> None:
        """Close the listener and every open connection (each still gets its log line)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._unlogged:
            message = f"egress: {self._unlogged} more connection(s) not logged (cap)"
            self._emit("warn", message, past_cap=True)
            self._unlogged = 0

    # --- one connection ----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._active >= self.limits.max_connections:
                with contextlib.suppress(Exception):  # read the head only to answer it
                    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _LINGER_SEC)
                reason = "too many open connections for this run"
                await self._refuse(reader, writer, 429, "egress", reason)
                return
            self._active += 1
            try:
                await self._serve(reader, writer)
            finally:
                self._active -= 1
        except asyncio.CancelledError:
            pass  # the run ended; the connection's line was written by _serve's finally
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), self.limits.idle_timeout_sec
            )
            request = parse_request(head)
        except asyncio.LimitOverrunError:
            limit = self.limits.max_header_bytes
            await self._refuse(reader, writer, 431, "egress", f"request head over {limit} bytes")
            return
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            return  # nothing asked: nothing to log
        except RequestError as exc:
            await self._refuse(reader, writer, 400, exc.what, str(exc))
            return
        what = request.describe()
        try:
            host, addresses = await asyncio.wait_for(
                checked_addresses(self.policy, request.host, request.port, self._resolver),
                self.limits.connect_timeout_sec,
            )
        except EgressRefused as exc:
            await self._refuse(reader, writer, 403, what, str(exc))
            return
        except (EgressUnresolvable, TimeoutError) as exc:
            await self._refuse(reader, writer, 502, what, str(exc) or "name resolution timed out")
            return
        connection = _Connection(request)
        try:
            upstream = await self._connect(addresses, request.port, connection)
        except OSError as exc:
            await self._refuse(reader, writer, 502, what, f"cannot connect: {exc.strerror or exc}")
            return
        started = time.monotonic()
        try:
            await self._tunnel(request, host, reader, writer, upstream, connection)
        finally:
            upstream[1].close()
            seconds = time.monotonic() - started
            self._emit(
                "info",
                f"egress: {what} -> {connection.address}: {connection.sent} bytes out, "
                f"{connection.received} bytes in, {seconds:.1f} s",
            )

    async def _connect(
        self, addresses: list[IPAddress], port: int, connection: _Connection
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the first checked address that answers (never resolving again)."""
        deadline = time.monotonic() + self.limits.connect_timeout_sec
        error: OSError = OSError("no address")
        for address in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                opened = await asyncio.wait_for(
                    asyncio.open_connection(str(address), port, limit=_RELAY_CHUNK), remaining
                )
            except TimeoutError:
                error = OSError(f"no answer within {self.limits.connect_timeout_sec:g} s")
            except OSError as exc:
                error = exc
            else:
                connection.address = address
                return opened
        raise error

    async def _tunnel(
        self,
        request: ProxyRequest,
        host: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        connection: _Connection,
    ) -> None:
        up_reader, up_writer = upstream
        if request.method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            head = forward_head(request, host)
            up_writer.write(head)
            connection.sent += len(head)
        await writer.drain()
        last_activity = [time.monotonic()]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, out: bool) -> None:
            while True:
                try:
                    chunk = await asyncio.wait_for(
                        src.read(_RELAY_CHUNK), self._idle_left(last_activity)
                    )
                except TimeoutError:
                    if self._idle_left(last_activity) > 0:
                        continue  # the other direction was busy: not idle
                    raise
                if not chunk:
                    if dst.can_write_eof():
                        dst.write_eof()
                    return
                last_activity[0] = time.monotonic()
                if out:
                    connection.sent += len(chunk)
                else:
                    connection.received += len(chunk)
                dst.write(chunk)
                await dst.drain()

        pumps = [
            asyncio.create_task(pump(reader, up_writer, True)),
            asyncio.create_task(pump(up_reader, writer, False)),
        ]
        try:
            # Both halves must finish (a client may half-close after sending its request); an
            # error or the idle timeout in either ends the whole connection.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    def _idle_left(self, last_activity: list[float]) -> float:
        return last_activity[0] + self.limits.idle_timeout_sec - time.monotonic()

    # --- answers and lines -------------------------------------------------------------------

    async def _refuse(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        what: str,
        reason: str,
    ) -> None:
        """Answer with the reason, log it, and close without a reset: a request body the
        client already sent is read and dropped first (closing a socket with unread data
        resets it, and the client may lose the answer)."""
        self._emit("warn", f"egress refused: {what}: {reason}")
        with contextlib.suppress(ConnectionError, TimeoutError):
            writer.write(response(status, f"egress refused: {what}: {reason}"))
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            async with asyncio.timeout(_LINGER_SEC):
                while await reader.read(_RELAY_CHUNK):
                    pass
        writer.close()

    def _emit(self, level: str, message: str, past_cap: bool = False) -> None:
        if self._logged >= self.limits.max_log_lines and not past_cap:
            self._unlogged += 1
            return
        self._logged += 1
        # A stream that already ended must not break the proxy: the line has nowhere to go.
        with contextlib.suppress(Exception):
            self._log(level, message)


# --- wiring into a run -----------------------------------------------------------------------


def limits_from(settings: Settings) -> EgressLimits:
    """The proxy limits a deployment configured."""
    return EgressLimits(
        connect_timeout_sec=settings.egress_connect_timeout_sec,
        idle_timeout_sec=settings.egress_idle_timeout_sec,
        max_connections=settings.egress_max_connections,
        max_header_bytes=settings.egress_max_header_bytes,
        max_log_lines=settings.egress_max_log_lines,
    )


def run_policy(settings: Settings, session: Session, run: Run) -> EgressPolicy:
    """The policy of `run`: its agent's environment's (`none` when it has none)."""
    agent = session.get(Agent, run.agent_id)
    environment = (
        session.get(Environment, agent.environment_id)
        if agent is not None and agent.environment_id
        else None
    )
    if environment is None:
        return EgressPolicy.build("none", (), settings.egress_allowed_networks)
    return EgressPolicy.build(
        environment.network_policy,
        environment.allowed_domains,
        settings.egress_allowed_networks,
    )


_NET_ISOLATED = re.compile(r"\bnet=none\b|[(,]net[,)]")


def unenforced(policy: EgressPolicy, isolation: str) -> tuple[str, str] | None:
    """What to do when the sandbox has its own network stack (then the proxy is the only way
    out and nothing is to do) or not: (level, message), level `error` refusing the run.

    A native sandbox without a network namespace (no bubblewrap) has the host's network, and
    no proxy can stop it from ignoring the proxy. An `allowlist` (someone chose which hosts are
    fine) is then refused; `none`, the default of every environment and of runs without one,
    goes on with a warn line, like the rest of that weaker isolation which `isolation` reports.
    `open` loses nothing but the private-range rule, also worth a line.
    """
    if _NET_ISOLATED.search(isolation):
        return None
    where = f"this sandbox ({isolation}) shares the host's network"
    fix = "use the container flavor or a host where bubblewrap works"
    if policy.mode == "allowlist":
        return "error", f"the network policy allowlist cannot be enforced: {where}; {fix}"
    return "warn", f"the network policy {policy.mode} is not enforced: {where}; {fix}"
