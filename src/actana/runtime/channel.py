"""The run channel: a small HTTP/1.1 client for the sandbox API (`/sandbox/v1`).

The channel is a unix socket forwarded by the worker (container flavor, which has no network at
all) or a loopback port (native flavor). `http.client` speaks HTTP/1.1 over either; httpx would
cost ~0.15 s of imports on every run (DESIGN.md section 7).

Every request opens its own connection: the calls are few (a handful per run plus one per model
turn), a local connect costs microseconds, and no stale keep-alive connection ever needs a retry.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Generator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from actana.runtime.emit import describe as _describe
from actana.runtime.multipart import FileChangedError, MultipartBody

# The sandbox API (see actana.protocol.payloads for who sends what).
ENV_PATH = "/sandbox/v1/env"
CONFIG_PATH = "/sandbox/v1/config"
MODEL_PATH = "/sandbox/v1/model"
RESULTS_PATH = "/sandbox/v1/results"

_MAX_JSON_BYTES = 16 * 1024 * 1024
_MAX_LINE_BYTES = 16 * 1024 * 1024
_MAX_ERROR_BODY_CHARS = 500


class ChannelError(Exception):
    """A sandbox API call failed: no connection, a non-2xx status, or an unreadable answer.

    Attributes:
        status: the HTTP status, or None when there was no (usable) response.
        body: the start of the response body, for the message.
    """

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class UnixHTTPConnection(http.client.HTTPConnection):
    """`HTTPConnection` over a unix socket; the Host header says `localhost`."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        """Prepare (not open) a connection to `socket_path`."""
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        """Open the unix socket instead of a TCP connection."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _address(channel: str) -> tuple[str, str, int]:
    """Parse ACTANA_CHANNEL into ("unix", path, 0) or ("tcp", host, port)."""
    if channel.startswith("unix:"):
        path = channel.removeprefix("unix:")
        if not path.startswith("/"):
            raise ValueError(f"ACTANA_CHANNEL: the socket path must be absolute: {channel!r}")
        return "unix", path, 0
    parts = urlsplit(channel)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(
            f"ACTANA_CHANNEL must be 'unix:/abs/path.sock' or 'http://HOST:PORT': {channel!r}"
        )
    return "tcp", parts.hostname, parts.port or 80


class Channel:
    """Client of the sandbox API over the run channel."""

    def __init__(self, channel: str) -> None:
        """Parse the ACTANA_CHANNEL value.

        Raises:
            ValueError: the value is neither a unix socket path nor an http URL.
        """
        self._kind, self._host, self._port = _address(channel)

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._kind == "unix":
            return UnixHTTPConnection(self._host, timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _open(
        self, method: str, path: str, token: str, body: bytes | None, timeout: float, accept: str
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send one request with a body held in memory; return the checked response."""
        conn = self._connect(timeout)
        headers = {"Authorization": f"Bearer {token}", "Accept": accept}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            _check(method, path, response)
        except ChannelError:
            conn.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ChannelError(f"{method} {path}: {_describe(exc)}") from exc
        return conn, response

    def get_json(self, path: str, token: str, *, timeout: float = 60) -> dict[str, Any]:
        """GET `path` and return its JSON object.

        Raises:
            ChannelError: no connection, a non-2xx status, or an answer that is not a JSON object.
        """
        conn, response = self._open("GET", path, token, None, timeout, "application/json")
        try:
            return _json_object(f"GET {path}", _read_capped(response, _MAX_JSON_BYTES))
        except (OSError, http.client.HTTPException) as exc:
            raise ChannelError(f"GET {path}: {_describe(exc)}") from exc
        finally:
            conn.close()

    def post_json(self, path: str, token: str, body: Any, *, timeout: float = 60) -> dict[str, Any]:
        """POST `body` as JSON and return the JSON object of the answer (e.g. the MCP bridge).

        Raises:
            ChannelError: no connection, a non-2xx status, or an answer that is not a JSON object.
        """
        data = json.dumps(body, ensure_ascii=False).encode()
        conn, response = self._open("POST", path, token, data, timeout, "application/json")
        try:
            return _json_object(f"POST {path}", _read_capped(response, _MAX_JSON_BYTES))
        except (OSError, http.client.HTTPException) as exc:
            raise ChannelError(f"POST {path}: {_describe(exc)}") from exc
        finally:
            conn.close()

    def stream_ndjson(
        self, path: str, token: str, body: Any, *, timeout: float
    ) -> Generator[dict[str, Any], None, None]:
        """POST `body` as JSON and yield the NDJSON objects of the answer as they arrive.

        Lines are split on `\\n` only. Close the generator to drop the connection early.

        Raises:
            ChannelError: no connection, a non-2xx status, a read failure, or a bad line.
        """
        data = json.dumps(body, ensure_ascii=False).encode()
        conn, response = self._open("POST", path, token, data, timeout, "application/x-ndjson")
        try:
            while True:
                try:
                    line = response.readline(_MAX_LINE_BYTES + 1)
                except (OSError, http.client.HTTPException) as exc:
                    raise ChannelError(f"POST {path}: {_describe(exc)}") from exc
                if not line:
                    return
                if len(line) > _MAX_LINE_BYTES:
                    raise ChannelError(f"POST {path}: an NDJSON line exceeds {_MAX_LINE_BYTES} B")
                if line.strip():
                    yield _json_object(f"POST {path}", line)
        finally:
            conn.close()

    def post_files(
        self, path: str, token: str, files: list[tuple[str, Path]], *, timeout: float = 120
    ) -> dict[str, Any] | None:
        """Upload `files` in ONE multipart/form-data request, streamed from disk.

        Args:
            path: the API path.
            token: the bearer token.
            files: (name sent as the part's filename, file on disk) pairs; every part is named
                `files`.
            timeout: seconds for the connection and each socket operation.

        Returns:
            The JSON object of the answer, or None when the answer is not JSON.

        Raises:
            ChannelError: a file cannot be opened safely, the request fails, or a non-2xx status.
        """
        try:
            multipart = MultipartBody.open(files)
        except OSError as exc:
            raise ChannelError(
                f"POST {path}: cannot read an output file: {_describe(exc)}"
            ) from exc
        conn = self._connect(timeout)
        try:
            conn.putrequest("POST", path)
            conn.putheader("Authorization", f"Bearer {token}")
            conn.putheader("Accept", "application/json")
            conn.putheader("Content-Type", multipart.content_type)
            conn.putheader("Content-Length", str(multipart.length))
            conn.endheaders()
            try:
                for chunk in multipart.chunks():
                    conn.send(chunk)
            except FileChangedError as exc:
                raise ChannelError(f"POST {path}: {exc}") from exc
            except OSError as send_error:
                # The server may answer (a 401, a 413) and close before reading everything:
                # its answer says more than the broken pipe does.
                try:
                    response = conn.getresponse()
                except (OSError, http.client.HTTPException):
                    raise send_error from None
                _check("POST", path, response)
                raise
            response = conn.getresponse()
            _check("POST", path, response)
            raw = _read_capped(response, _MAX_JSON_BYTES)
        except ChannelError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise ChannelError(f"POST {path}: {_describe(exc)}") from exc
        finally:
            multipart.close()
            conn.close()
        try:
            return _json_object(f"POST {path}", raw)
        except ChannelError:
            return None


def _check(method: str, path: str, response: http.client.HTTPResponse) -> None:
    """Raise ChannelError for a non-2xx response, with the start of its body."""
    if 200 <= response.status < 300:
        return
    try:
        raw = response.read(4096)
    except (OSError, http.client.HTTPException):
        raw = b""
    body = raw.decode("utf-8", "replace")[:_MAX_ERROR_BODY_CHARS]
    raise ChannelError(
        f"{method} {path} answered {response.status}: {body}", status=response.status, body=body
    )


def _read_capped(response: http.client.HTTPResponse, cap: int) -> bytes:
    data = response.read(cap + 1)
    if len(data) > cap:
        raise ChannelError(f"the answer exceeds {cap} bytes")
    return data


def _json_object(what: str, raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ChannelError(f"{what}: the answer is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ChannelError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value
