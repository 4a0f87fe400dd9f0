"""The run channel client against small real HTTP servers on a unix socket and on loopback."""

from __future__ import annotations

import hashlib
import json
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from actana.runtime.channel import Channel, ChannelError
from tests.unit.runtime.sandbox_api import (
    SESSION,
    SETUP,
    UPLOAD,
    SandboxApi,
    delta,
    parse_multipart,
    serve,
    turn,
)


@pytest.fixture(params=["unix", "tcp"])
def api_channel(
    request: pytest.FixtureRequest, socket_dir: Path
) -> Iterator[tuple[SandboxApi, Channel]]:
    api = SandboxApi(env={"variables": {"A": "1"}}, config={}, turns=[])
    unix = socket_dir / "api.sock" if request.param == "unix" else None
    with serve(api, unix) as address:
        yield api, Channel(address)


def test_get_json_sends_the_bearer_token(api_channel: tuple[SandboxApi, Channel]) -> None:
    api, channel = api_channel
    assert channel.get_json("/sandbox/v1/env", SETUP) == {"variables": {"A": "1"}}
    assert api.requests[0].headers["authorization"] == f"Bearer {SETUP}"


def test_a_refusal_is_a_channel_error_with_status_and_body(
    api_channel: tuple[SandboxApi, Channel],
) -> None:
    _, channel = api_channel
    with pytest.raises(ChannelError) as caught:
        channel.get_json("/sandbox/v1/env", "wrong")
    assert caught.value.status == 401
    assert "invalid or expired token" in caught.value.body
    assert "answered 401" in str(caught.value)


def test_stream_ndjson_yields_lines_as_objects(api_channel: tuple[SandboxApi, Channel]) -> None:
    api, channel = api_channel
    api.turns.append([delta("a"), delta("b"), turn("done")])
    items = list(channel.stream_ndjson("/sandbox/v1/model", SESSION, {"q": 1}, timeout=10))
    assert [i["type"] for i in items] == ["delta", "delta", "turn"]
    assert json.loads(api.requests[0].body) == {"q": 1}


def test_nothing_listening_is_a_channel_error(socket_dir: Path) -> None:
    with pytest.raises(ChannelError) as caught:
        Channel(f"unix:{socket_dir / 'nobody.sock'}").get_json("/x", "t", timeout=5)
    assert caught.value.status is None


@pytest.mark.parametrize(
    "address", ["unix:relative.sock", "https://127.0.0.1:1", "127.0.0.1:80", "http://h:1/p", ""]
)
def test_bad_channel_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match="ACTANA_CHANNEL"):
        Channel(address)


def test_post_files_sends_one_multipart_request(
    api_channel: tuple[SandboxApi, Channel], tmp_path: Path
) -> None:
    api, channel = api_channel
    (tmp_path / "a.txt").write_bytes(b"alpha\r\n--not-a-boundary")
    (tmp_path / "b.bin").write_bytes(bytes(range(256)))
    (tmp_path / "empty").write_bytes(b"")
    files = [
        ("a.txt", tmp_path / "a.txt"),
        ("sub/b.bin", tmp_path / "b.bin"),
        ("e", tmp_path / "empty"),
    ]
    assert channel.post_files("/sandbox/v1/results", UPLOAD, files) == {
        "files": ["a.txt", "sub/b.bin", "e"]
    }
    ((req),) = api.requests
    assert int(req.headers["content-length"]) == len(req.body)
    assert [(f.field, f.filename, f.data) for f in api.uploads[0]] == [
        ("files", "a.txt", b"alpha\r\n--not-a-boundary"),
        ("files", "sub/b.bin", bytes(range(256))),
        ("files", "e", b""),
    ]


def test_post_files_refuses_a_symlink(tmp_path: Path, socket_dir: Path) -> None:
    api = SandboxApi(env={}, config={}, turns=[])
    (tmp_path / "link").symlink_to("/etc/passwd")
    with serve(api, socket_dir / "api.sock") as address, pytest.raises(ChannelError):
        Channel(address).post_files("/sandbox/v1/results", UPLOAD, [("link", tmp_path / "link")])
    assert api.requests == []  # refused before anything was sent


class _HashingHandler(BaseHTTPRequestHandler):
    """Consumes an upload in small pieces and answers with its size and digest."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        left = int(self.headers["Content-Length"])
        digest = hashlib.sha256()
        while left:
            piece = self.rfile.read(min(left, 65536))
            digest.update(piece)
            left -= len(piece)
        data = json.dumps({"digest": digest.hexdigest()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_post_files_streams_from_disk(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    size = 32 * 1024 * 1024
    with big.open("wb") as f:
        f.truncate(size)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HashingHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        channel = Channel(f"http://127.0.0.1:{server.server_address[1]}")
        tracemalloc.start()
        try:
            answer = channel.post_files("/up", "t", [("big.bin", big)])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        server.shutdown()
        server.server_close()
    assert answer is not None
    assert len(answer["digest"]) == 64
    assert peak < size // 8  # a body assembled in memory would need all 32 MiB


def test_parse_multipart_helper_reads_what_it_is_given() -> None:
    # The stand-in's parser is what the upload assertions rely on: check it on a known body.
    body = (
        b'--B\r\nContent-Disposition: form-data; name="files"; filename="x.txt"\r\n\r\n'
        b"data\r\n--B--\r\n"
    )
    ((part),) = parse_multipart("multipart/form-data; boundary=B", body)
    assert (part.field, part.filename, part.data) == ("files", "x.txt", b"data")
