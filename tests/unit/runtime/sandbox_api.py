"""A small stand-in for the sandbox API (`/sandbox/v1`) that the runtime talks to.

It stands in for the real server (whose own tests live elsewhere): it serves a fixed environment
and config, answers model calls from a script of turns, accepts uploads, enforces the bearer
token of each path (one-time tokens work once), and records every request so that tests can
check what the runtime sent. It listens on a unix socket or on 127.0.0.1, like the real channel.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SETUP, RUN, UPLOAD, SESSION = (
    "otp-setup-4f1e9c",
    "otp-run-7a2b6d",
    "otp-upload-9c3e1f",
    "session-5d8a0b",
)
TOKENS = {
    "/sandbox/v1/env": SETUP,
    "/sandbox/v1/config": RUN,
    "/sandbox/v1/results": UPLOAD,
    "/sandbox/v1/model": SESSION,
}
ONE_TIME = {SETUP, RUN, UPLOAD}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class UploadedFile:
    field: str | None
    filename: str | None
    data: bytes


def parse_multipart(content_type: str, body: bytes) -> list[UploadedFile]:
    """Split a multipart/form-data body into its parts, with the standard library's parser."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    return [
        UploadedFile(
            part.get_param("name", header="content-disposition"),  # type: ignore[arg-type]
            part.get_filename(),
            part.get_payload(decode=True),  # type: ignore[arg-type]
        )
        for part in message.iter_parts()
    ]


def delta(text: str) -> dict[str, Any]:
    return {"type": "delta", "text": text}


def turn(
    text: str | None = None,
    calls: list[tuple[str, str, dict[str, Any]]] = (),  # type: ignore[assignment]
    usage: tuple[int, int] = (10, 5),
) -> dict[str, Any]:
    """A gateway `turn` line: (id, name, args) tool calls and (input, output) tokens."""
    return {
        "type": "turn",
        "turn": {
            "text": text,
            "tool_calls": [{"id": i, "name": n, "args": a} for i, n, a in calls],
            "stop_reason": "tool_use" if calls else "end_turn",
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1], "model_calls": 1},
        },
    }


@dataclass
class SandboxApi:
    """The stand-in server; `turns` is one list of NDJSON objects per model call."""

    env: dict[str, Any]
    config: dict[str, Any]
    turns: list[list[dict[str, Any]]]
    requests: list[Recorded] = field(default_factory=list)
    uploads: list[list[UploadedFile]] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def model_bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.requests if r.path == "/sandbox/v1/model"]

    def answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            self.requests.append(Recorded(method, path, headers, body))
            expected = TOKENS.get(path)
            token = headers.get("authorization", "").removeprefix("Bearer ")
            if expected is None or token != expected or token in self.used:
                return _send_json(handler, 401, {"detail": "invalid or expired token"})
            if token in ONE_TIME:
                self.used.add(token)
            if path == "/sandbox/v1/env" and method == "GET":
                return _send_json(handler, 200, self.env)
            if path == "/sandbox/v1/config" and method == "GET":
                return _send_json(handler, 200, self.config)
            if path == "/sandbox/v1/results" and method == "POST":
                files = parse_multipart(headers["content-type"], body)
                self.uploads.append(files)
                return _send_json(handler, 200, {"files": [f.filename for f in files]})
            if path == "/sandbox/v1/model" and method == "POST":
                script = self.turns.pop(0) if self.turns else [_exhausted()]
                return _send_ndjson(handler, script)
        return _send_json(handler, 404, {"detail": "not found"})


def _exhausted() -> dict[str, Any]:
    return {"type": "error", "code": "script_exhausted", "message": "no more scripted turns"}


def _send_json(handler: BaseHTTPRequestHandler, status: int, value: Any) -> None:
    data = json.dumps(value).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _send_ndjson(handler: BaseHTTPRequestHandler, items: list[dict[str, Any]]) -> None:
    """Stream lines with chunked transfer encoding, as a streaming ASGI server does."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/x-ndjson")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for item in items:
        line = json.dumps(item).encode() + b"\n"
        handler.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        handler.wfile.flush()
    handler.wfile.write(b"0\r\n\r\n")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.api.answer(self, "GET")  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        self.server.api.answer(self, "POST")  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet; and client_address is no tuple on a unix socket


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    api: SandboxApi


class _TcpServer(ThreadingHTTPServer):
    api: SandboxApi


@contextmanager
def serve(api: SandboxApi, unix_socket: Path | None) -> Iterator[str]:
    """Serve `api` in a background thread; yield the ACTANA_CHANNEL value to reach it."""
    server: _UnixServer | _TcpServer
    if unix_socket is not None:
        server = _UnixServer(str(unix_socket), _Handler)
        channel = f"unix:{unix_socket}"
    else:
        server = _TcpServer(("127.0.0.1", 0), _Handler)
        channel = f"http://127.0.0.1:{server.server_address[1]}"
    server.api = api
    # A short poll interval: shutdown() waits for the loop to notice it.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield channel
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
