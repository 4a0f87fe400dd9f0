"""http_request, web_fetch and the loopback forwarder, against the real egress proxy (run here
in a thread) and real HTTP servers on loopback, reached as `localhost` (loopback exempted, as
a deployment's `egress_allowed_networks` may)."""

from __future__ import annotations

import asyncio
import http.server
import json
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from actana.protocol.payloads import NetworkSpec, RunLimits
from actana.runs.egress import EgressLimits, EgressProxy
from actana.runs.egress_policy import EgressPolicy
from actana.runtime.netproxy import egress_socket_path, start_forwarder
from actana.runtime.tools.base import ToolContext, ToolError
from actana.runtime.tools.registry import Toolbox, build_tools

LIMITS = RunLimits(deadline_ms=0, tool_timeout_sec=10, tool_output_bytes=4096)
PAGE = (
    b"<html><head><title>The  Title</title><style>p{color:red}</style>"
    b"<script>alert('x')</script></head><body><h1>Hello</h1><p>First <b>para</b>.</p>"
    b"<ul><li>one</li><li>two</li></ul><a href='/next'>Next page</a></body></html>"
)


class Handler(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []  # noqa: RUF012 - shared with the test on purpose

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        Handler.seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        routes: dict[str, tuple[int, str, bytes, dict[str, str]]] = {
            "/page": (200, "text/html; charset=utf-8", PAGE, {}),
            "/big": (200, "text/plain", b"x" * 20000, {}),
            "/bin": (200, "image/png", b"\x89PNG....", {}),
            "/hop": (302, "text/plain", b"", {"Location": "/page"}),
            "/away": (302, "text/plain", b"", {"Location": "http://10.0.0.1/secret"}),
            "/meta": (302, "text/plain", b"", {"Location": "http://169.254.169.254/latest"}),
        }
        status, kind, data, extra = routes.get(self.path, (200, "text/plain", b"hi", {}))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer


@pytest.fixture
def origin() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Handler.seen.clear()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


@contextmanager
def egress_proxy(socket_dir: Path, mode: str, domains: list[str]) -> Iterator[list[str]]:
    """The worker's proxy on `socket_dir/egress.sock`, in a loop of its own; yields its lines."""
    lines: list[str] = []
    loop = asyncio.new_event_loop()
    proxy = EgressProxy(
        EgressPolicy.build(mode, domains, ["127.0.0.0/8"]),
        EgressLimits(),
        lambda level, message: lines.append(f"{level}: {message}"),
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(proxy.start(socket_dir / "egress.sock"), loop).result(5)
    try:
        yield lines
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def toolbox(root: Path, socket_dir: Path, mode: str, domains: list[str] | None = None) -> Toolbox:
    context = ToolContext(
        network=NetworkSpec(mode, domains or []),  # type: ignore[arg-type]
        egress_socket=str(socket_dir / "egress.sock"),
    )
    tools = build_tools(LIMITS)
    return Toolbox([tools["http_request"], tools["web_fetch"]], str(root), lambda: 60.0, context)


def fails(box: Toolbox, name: str, **args: Any) -> str:
    with pytest.raises(ToolError) as caught:
        box.invoke(name, args)
    return str(caught.value)


def test_http_request_round_trip(tmp_path: Path, socket_dir: Path, origin: int) -> None:
    with egress_proxy(socket_dir, "allowlist", ["localhost"]) as lines:
        box = toolbox(tmp_path, socket_dir, "allowlist", ["localhost"])
        result = box.invoke(
            "http_request",
            {
                "method": "POST",
                "url": f"http://localhost:{origin}/echo?x=1",
                "headers": {"X-Token": "abc", "Content-Type": "application/json"},
                "body": json.dumps({"a": 1}),
            },
        )
    assert result["status"] == 200
    assert result["body"] == "hi"
    assert result["truncated"] is False
    assert result["headers"]["content-type"] == "text/plain"
    seen = Handler.seen[0]
    assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/echo?x=1", b'{"a": 1}')
    assert seen["headers"]["X-Token"] == "abc"
    assert seen["headers"]["Host"] == f"localhost:{origin}"
    assert len(lines) == 1
    assert lines[0].startswith(
        f"info: egress: POST http://localhost:{origin}/echo?x=1 -> 127.0.0.1"
    )


def test_http_request_truncates_and_does_not_follow_redirects(
    tmp_path: Path, socket_dir: Path, origin: int
) -> None:
    with egress_proxy(socket_dir, "open", []):
        box = toolbox(tmp_path, socket_dir, "open")
        big = box.invoke("http_request", {"url": f"http://localhost:{origin}/big"})
        hop = box.invoke("http_request", {"url": f"http://localhost:{origin}/hop"})
        head = box.invoke(
            "http_request", {"url": f"http://localhost:{origin}/big", "method": "HEAD"}
        )
    assert big["truncated"] is True
    assert big["body"].endswith(
        "[... output truncated: 20000 bytes in total, the first 4096 shown]"
    )
    assert (hop["status"], hop["headers"]["location"]) == (302, "/page")
    assert head["body"] == ""


def test_refusals_reach_the_model_with_the_proxys_reason(
    tmp_path: Path, socket_dir: Path, origin: int
) -> None:
    with egress_proxy(socket_dir, "allowlist", ["localhost"]) as lines:
        box = toolbox(tmp_path, socket_dir, "allowlist", ["localhost"])
        http_ip = fails(box, "http_request", url="http://10.0.0.1/")
        https_name = fails(box, "http_request", url="https://example.com/")
        metadata = fails(box, "web_fetch", url="http://169.254.169.254/latest/meta-data")
    assert http_ip == (
        "the egress proxy refused: egress refused: GET http://10.0.0.1/: "
        "raw IP addresses are refused under the allowlist policy"
    )
    assert "CONNECT example.com:443: not in the environment's allowed domains" in https_name
    assert "raw IP addresses are refused" in metadata
    assert [line.split(":")[0] for line in lines] == ["warn"] * 3


def test_under_none_the_tools_refuse_before_trying(tmp_path: Path, socket_dir: Path) -> None:
    box = toolbox(tmp_path, socket_dir, "none")
    message = fails(box, "web_fetch", url="https://example.com/")
    assert "network policy is none" in message
    assert "network policy is none" in fails(box, "http_request", url="http://example.com/")


def test_bad_arguments_say_what_to_fix(tmp_path: Path, socket_dir: Path) -> None:
    box = toolbox(tmp_path, socket_dir, "open")
    assert "only http:// and https://" in fails(box, "http_request", url="file:///etc/passwd")
    assert "user:password@" in fails(box, "http_request", url="http://u:p@example.com/")
    assert "set by the tool itself" in fails(
        box, "http_request", url="http://example.com/", headers={"Host": "evil"}
    )
    assert "one line" in fails(
        box, "http_request", url="http://example.com/", headers={"X": "a\r\nInjected: 1"}
    )
    assert "method" in fails(box, "http_request", url="http://example.com/", method="TRACE")


def test_web_fetch_reduces_html_and_follows_allowed_redirects(
    tmp_path: Path, socket_dir: Path, origin: int
) -> None:
    with egress_proxy(socket_dir, "allowlist", ["localhost"]) as lines:
        box = toolbox(tmp_path, socket_dir, "allowlist", ["localhost"])
        page = box.invoke("web_fetch", {"url": f"http://localhost:{origin}/hop"})
    assert page["url"] == f"http://localhost:{origin}/page"
    assert page["title"] == "The Title"
    assert page["text"] == "Hello\nFirst para.\n- one\n- two\nNext page"
    assert page["links"] == [{"text": "Next page", "url": f"http://localhost:{origin}/next"}]
    assert "alert" not in page["text"]
    assert "color" not in page["text"]
    assert len(lines) == 2  # each hop is its own checked connection


def test_web_fetch_never_follows_a_redirect_to_a_refused_destination(
    tmp_path: Path, socket_dir: Path, origin: int
) -> None:
    with egress_proxy(socket_dir, "open", []) as lines:
        box = toolbox(tmp_path, socket_dir, "open")
        private = fails(box, "web_fetch", url=f"http://localhost:{origin}/away")
        metadata = fails(box, "web_fetch", url=f"http://localhost:{origin}/meta")
        binary = fails(box, "web_fetch", url=f"http://localhost:{origin}/bin")
    assert private.startswith("redirected to http://10.0.0.1/secret, which failed:")
    assert "private address" in private
    assert "link-local address" in metadata
    assert "image/png" in binary
    assert sum("egress refused" in line for line in lines) == 2


def test_https_goes_through_connect_and_verifies_the_certificate(
    tmp_path: Path, socket_dir: Path
) -> None:
    """A TLS server with a self-signed certificate: the tunnel opens, verification refuses."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert), "-days", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    import ssl

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with egress_proxy(socket_dir, "open", []) as lines:
            box = toolbox(tmp_path, socket_dir, "open")
            port = server.server_address[1]
            message = fails(box, "http_request", url=f"https://localhost:{port}/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert message.startswith("TLS with localhost failed:")
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert lines[0].startswith(f"info: egress: CONNECT localhost:{port} -> 127.0.0.1")


def test_the_forwarder_carries_urllib_through_the_proxy(socket_dir: Path, origin: int) -> None:
    with egress_proxy(socket_dir, "allowlist", ["localhost"]) as lines:
        forwarder = start_forwarder(str(socket_dir / "egress.sock"))
        try:
            assert forwarder.env["https_proxy"] == forwarder.url
            assert forwarder.env["NO_PROXY"] == ""
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({"http": forwarder.url, "https": forwarder.url})
            )
            with opener.open(f"http://localhost:{origin}/x", timeout=10) as answer:
                assert answer.read() == b"hi"
            with pytest.raises(urllib.error.HTTPError) as refused:
                opener.open("http://10.1.2.3/", timeout=10)
            assert refused.value.code == 403
            assert b"raw IP addresses are refused" in refused.value.read()
            refused.value.close()
        finally:
            forwarder.close()
    # The connection's line is written when the connection closes, which may come after the
    # refusal: the two lines' order is not part of the contract.
    assert len(lines) == 2
    assert any(
        line.startswith(f"info: egress: GET http://localhost:{origin}/x -> 127.0.0.1")
        for line in lines
    )
    assert any(line.startswith("warn: egress refused: GET http://10.1.2.3/") for line in lines)


def test_egress_socket_path(socket_dir: Path) -> None:
    channel = f"unix:{socket_dir}/channel.sock"
    assert egress_socket_path(channel) is None  # nothing there yet
    (socket_dir / "egress.sock").touch()
    assert egress_socket_path(channel) == str(socket_dir / "egress.sock")
    assert egress_socket_path("http://127.0.0.1:8000") is None
