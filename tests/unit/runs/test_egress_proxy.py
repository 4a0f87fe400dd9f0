"""The egress proxy over real sockets: a unix socket in front, real TCP servers on loopback
behind (reachable because the tests exempt 127.0.0.0/8, as a deployment may exempt a mirror)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from actana.runs.egress import EgressLimits, EgressProxy
from actana.runs.egress_policy import EgressPolicy

Lines = list[tuple[str, str]]
LOOPBACK = ["127.0.0.0/8"]


@asynccontextmanager
async def upstream(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1; yields its port."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


@asynccontextmanager
async def proxy(
    mode: str, domains: list[str], exempt: list[str] = LOOPBACK, **limits: Any
) -> AsyncIterator[tuple[str, Lines, EgressProxy]]:
    """A running proxy; yields (socket path, the log lines it wrote, the proxy)."""
    lines: Lines = []
    egress = EgressProxy(
        EgressPolicy.build(mode, domains, exempt),
        EgressLimits(**limits),
        lambda level, message: lines.append((level, message)),
    )
    with tempfile.TemporaryDirectory(prefix="eg-") as directory:
        path = Path(directory) / "egress.sock"
        await egress.start(path)
        try:
            yield str(path), lines, egress
        finally:
            await egress.stop()


async def ask(path: str, head: bytes) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send a request head; returns the answer's head and the open streams."""
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(head)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return answer, reader, writer


async def refusal(path: str, head: bytes) -> tuple[int, str]:
    answer, reader, writer = await ask(path, head)
    body = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return int(answer.split(b" ")[1]), body.decode()


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def test_connect_tunnels_bytes_both_ways_and_logs_one_line() -> None:
    async def body() -> None:
        async with upstream(echo) as port, proxy("allowlist", ["localhost"]) as (path, lines, _):
            answer, reader, writer = await ask(
                path, f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode()
            )
            assert answer.startswith(b"HTTP/1.1 200")
            writer.write(b"ping" * 1000)
            await writer.drain()
            assert await reader.readexactly(4000) == b"ping" * 1000
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            for _ in range(500):  # the line is written when the proxy closes its side (<= 5 s)
                if lines:
                    break
                await asyncio.sleep(0.01)
        assert lines == [
            (
                "info",
                lines[0][1],
            )
        ]
        assert lines[0][1].startswith(
            f"egress: CONNECT localhost:{port} -> 127.0.0.1: 4000 bytes out, 4000 bytes in"
        )

    run(body())


def test_absolute_form_is_forwarded_with_host_rewritten_and_proxy_headers_dropped() -> None:
    seen: list[bytes] = []

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        seen.append(await reader.readexactly(5))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async def body() -> None:
        async with upstream(origin) as port, proxy("open", []) as (path, _lines, _):
            head = (
                f"POST http://LOCALHOST:{port}/a/b?q=1#frag HTTP/1.1\r\n"
                "Host: metadata.google.internal\r\nProxy-Authorization: Basic eA==\r\n"
                "Proxy-Connection: keep-alive\r\nX-Mine: yes\r\nContent-Length: 5\r\n\r\nhello"
            ).encode()
            answer, reader, writer = await ask(path, head)
            assert answer.startswith(b"HTTP/1.1 200 OK")
            assert await reader.read() == b"ok"
            writer.close()
        forwarded = seen[0].decode()
        assert forwarded.startswith("POST /a/b?q=1 HTTP/1.1\r\n")
        assert f"Host: localhost:{port}\r\n" in forwarded
        assert "metadata" not in forwarded
        assert "Proxy-" not in forwarded
        assert "X-Mine: yes\r\n" in forwarded
        assert "Connection: close\r\n" in forwarded
        assert seen[1] == b"hello"

    run(body())


def test_refusals_answer_403_with_the_reason_and_log_it() -> None:
    async def body() -> None:
        async with proxy("allowlist", ["localhost"]) as (path, lines, _):
            cases = {
                b"CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n": "raw IP addresses are refused",
                b"CONNECT 2130706433:80 HTTP/1.1\r\n\r\n": "IP address in disguise",
                b"CONNECT example.com:443 HTTP/1.1\r\n\r\n": "not in the environment's allowed",
                b"GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\n\r\n": "raw IP",
            }
            for head, reason in cases.items():
                status, text = await refusal(path, head)
                assert status == 403
                target = head.split(b" ")[1].decode()
                assert text.startswith(f"egress refused: {head.split(b' ')[0].decode()} {target}: ")
                assert reason in text
            assert [level for level, _ in lines] == ["warn"] * 4
            assert lines[0][1] == (
                "egress refused: CONNECT 10.0.0.1:443: "
                "raw IP addresses are refused under the allowlist policy"
            )

    run(body())


def test_open_still_refuses_private_ranges_without_an_exemption() -> None:
    async def body() -> None:
        async with upstream(echo) as port, proxy("open", [], exempt=[]) as (path, lines, _):
            status, text = await refusal(
                path, f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode()
            )
            assert status == 403
            assert "localhost resolves to 127.0.0.1: loopback address" in text
            status, text = await refusal(path, b"CONNECT [::ffff:10.1.2.3]:443 HTTP/1.1\r\n\r\n")
            assert "private address, embedded" in text
            assert len(lines) == 2

    run(body())


def test_none_refuses_everything() -> None:
    async def body() -> None:
        async with upstream(echo) as port, proxy("none", []) as (path, lines, _):
            status, text = await refusal(
                path, f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode()
            )
            assert (status, text.strip()) == (
                403,
                f"egress refused: CONNECT localhost:{port}: "
                "the network policy is none (no egress at all)",
            )
            assert lines[0][0] == "warn"

    run(body())


def test_malformed_requests_get_400_saying_what_to_send() -> None:
    async def body() -> None:
        async with proxy("open", []) as (path, lines, _):
            cases = {
                b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n": "send absolute URLs",
                b"GET https://example.com/ HTTP/1.1\r\n\r\n": "use CONNECT host:443",
                b"CONNECT example.com HTTP/1.1\r\n\r\n": "CONNECT needs host:port",
                b"CONNECT user@example.com:443 HTTP/1.1\r\n\r\n": "user info",
                b"GET http://example.com/ HTTP/1.1\r\nBad Header\r\n\r\n": "malformed header",
                b"GET http://example.com/ HTTP/1.1\r\nContent-Length: 1\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n": "both",
                b"hello\r\n\r\n": "expected a request line",
            }
            for head, reason in cases.items():
                status, text = await refusal(path, head)
                assert status == 400, text
                assert reason in text
            assert len(lines) == len(cases)

    run(body())


def test_oversized_heads_get_431() -> None:
    async def body() -> None:
        async with proxy("open", [], max_header_bytes=1024) as (path, _lines, _):
            head = b"GET http://example.com/ HTTP/1.1\r\nX: " + b"a" * 4000 + b"\r\n\r\n"
            status, text = await refusal(path, head)
            assert status == 431
            assert "over 1024 bytes" in text

    run(body())


def test_connections_per_run_are_capped() -> None:
    async def body() -> None:
        capped = proxy("open", [], max_connections=2)
        async with upstream(echo) as port, capped as (path, _lines, _):
            head = f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode()
            held = [await ask(path, head) for _ in range(2)]
            status, text = await refusal(path, head)
            assert status == 429
            assert "too many open connections" in text
            for _, _, writer in held:
                writer.close()

    run(body())


def test_idle_tunnels_are_closed() -> None:
    async def body() -> None:
        async with (
            upstream(echo) as port,
            proxy("open", [], idle_timeout_sec=0.3) as (path, _lines, _),
        ):
            answer, reader, writer = await ask(
                path, f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode()
            )
            assert answer.startswith(b"HTTP/1.1 200")
            # Nothing sent: the proxy closes the tunnel after the idle timeout (bounded wait).
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

    run(body())


def test_unreachable_and_unresolvable_destinations_get_502() -> None:
    async def body() -> None:
        async with proxy("open", []) as (path, _lines, _):
            closed = await asyncio.start_server(echo, "127.0.0.1", 0)
            port = closed.sockets[0].getsockname()[1]
            closed.close()
            await closed.wait_closed()
            status, text = await refusal(
                path, f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode()
            )
            assert status == 502
            assert "cannot connect" in text
            status, text = await refusal(path, b"CONNECT no-such-host.invalid:443 HTTP/1.1\r\n\r\n")
            assert status == 502
            assert "cannot resolve no-such-host.invalid" in text

    run(body())


def test_stop_closes_open_tunnels_and_log_lines_are_capped() -> None:
    async def body() -> None:
        async with (
            upstream(echo) as port,
            proxy("none", [], max_log_lines=3) as (path, lines, _egress),
        ):
            for _ in range(5):
                await refusal(path, f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode())
            assert len(lines) == 3
        assert lines[-1] == ("warn", "egress: 2 more connection(s) not logged (cap)")

    run(body())

    async def tunnels() -> None:
        async with upstream(echo) as port, proxy("open", []) as (path, lines, egress):
            _answer, reader, writer = await ask(
                path, f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode()
            )
            await egress.stop()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            assert lines[0][0] == "info"
            assert lines[0][1].startswith(f"egress: CONNECT localhost:{port} -> 127.0.0.1: 0 bytes")

    run(tunnels())


def test_the_proxy_connects_to_the_address_it_checked_and_never_looks_the_name_up_again() -> None:
    """DNS rebinding: a name that answers a harmless address for the check and a private one
    afterwards. The proxy asks once per connection and connects to what it checked."""
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"] if len(lookups) == 1 else ["10.0.0.1"]

    async def body() -> None:
        lines: Lines = []
        egress = EgressProxy(
            EgressPolicy.build("allowlist", ["rebind.example"], LOOPBACK),
            EgressLimits(),
            lambda level, message: lines.append((level, message)),
            resolver=rebinding,
        )
        async with upstream(echo) as port:
            with tempfile.TemporaryDirectory(prefix="eg-") as directory:
                path = Path(directory) / "egress.sock"
                await egress.start(path)
                try:
                    head = f"CONNECT rebind.example:{port} HTTP/1.1\r\n\r\n".encode()
                    answer, reader, writer = await ask(str(path), head)
                    assert answer.startswith(b"HTTP/1.1 200"), answer
                    writer.write(b"still the checked host")
                    await writer.drain()
                    assert await reader.readexactly(22) == b"still the checked host"
                    writer.close()
                    # A second connection gets a fresh lookup, and its private answer is refused.
                    status, reason = await refusal(str(path), head)
                    assert status == 403
                    assert "10.0.0.1" in reason
                finally:
                    await egress.stop()
        assert lookups == ["rebind.example", "rebind.example"]

    run(body())
