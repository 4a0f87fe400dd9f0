"""An HTTP client that talks only to the run's egress proxy (a unix socket): absolute-form
requests for http, `CONNECT` then TLS for https (system CA bundle, host name checked).

Everything that fails is a `ToolError` written for the model; a refusal by the proxy carries the
proxy's one-line reason (`egress refused: CONNECT host:443: ...`).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from actana.runtime.tools.base import ToolError, decode_prefix, truncation_marker

_MAX_HEADERS_SHOWN = 60
_MAX_HEADER_CHARS = 2000
_CHUNK = 64 * 1024
TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/xhtml+xml",
    "+json",
    "+xml",
    "application/javascript",
)


@dataclass
class Answer:
    """A response as read: `body` holds at most the cap; `total` counts what was seen."""

    url: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    total: int
    complete: bool  # False: the body went on past what was read (cap or deadline)

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name), "")


def _split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL; ToolError saying what is wrong."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ToolError(f"not a valid URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ToolError(f"only http:// and https:// URLs can be fetched, not {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ToolError("user:password@ in URLs is not accepted; send an Authorization header")
    if not parts.hostname:
        raise ToolError(f"the URL {url!r} has no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def _refusal(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip().splitlines()
    return text[0][:500] if text else f"status {status}"


def _tunnel(sock: socket.socket, host: str, port: int) -> None:
    """Ask the proxy for a tunnel; ToolError with the proxy's reason when it refuses."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    answer = http.client.HTTPResponse(sock, method="CONNECT")
    answer.begin()
    if answer.status != 200:
        raise ToolError(f"the egress proxy refused: {_refusal(answer.status, answer.read(4096))}")
    # HTTPResponse buffers through its own file object: nothing is read past the empty line of
    # a CONNECT answer (the server speaks only after our TLS hello).


def _open(egress: str, scheme: str, host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(egress)
        if scheme == "https":
            _tunnel(sock, host, port)
            return ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return sock


def _read_body(
    response: http.client.HTTPResponse, cap: int, deadline: float
) -> tuple[bytes, int, bool]:
    """(the first `cap` bytes, bytes seen, whether the body ended). Past the cap the body is
    still read, up to four times the cap, to say how big it was."""
    kept = bytearray()
    seen = 0
    while seen < cap * 4:
        if time.monotonic() >= deadline:
            return bytes(kept), seen, False
        chunk = response.read1(_CHUNK)
        if not chunk:
            return bytes(kept), seen, True
        seen += len(chunk)
        kept += chunk[: max(0, cap - len(kept))]
    # Closed, or no byte left of a Content-Length: the body was read to its end.
    return bytes(kept), seen, response.isclosed() or response.length == 0


def fetch(
    egress: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    timeout: float,
    cap: int,
) -> Answer:
    """One request through the proxy; the body is read up to `cap` bytes (and counted up to
    four times that, for the truncation marker).

    Raises:
        ToolError: a bad URL, a refusal by the proxy, a failed connection or TLS handshake.
    """
    scheme, host, port, path = _split_url(url)
    deadline = time.monotonic() + timeout
    authority = host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"
    if ":" in host:
        authority = f"[{host}]" + ("" if port in (80, 443) else f":{port}")
    try:
        sock = _open(egress, scheme, host, port, timeout)
    except (ssl.SSLError, ssl.CertificateError) as exc:
        raise ToolError(f"TLS with {host} failed: {exc}") from None
    except TimeoutError:
        raise ToolError(f"no answer from {host} within {timeout:g} s") from None
    except OSError as exc:
        raise ToolError(f"cannot reach {host} through the egress proxy: {exc}") from None
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    connection.sock = sock  # already connected: http.client never opens a socket itself
    try:
        target = f"http://{authority}{path}" if scheme == "http" else path
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", authority)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Accept-Encoding", "identity")
        connection.putheader("Connection", "close")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            connection.putheader("Content-Length", str(len(body or b"")))
        connection.endheaders(body)
        response = connection.getresponse()
        if scheme == "http" and response.getheader("X-Actana-Egress") == "refused":
            raise ToolError(
                f"the egress proxy refused: {_refusal(response.status, response.read(4096))}"
            )
        data, total, complete = (
            (b"", 0, True) if method == "HEAD" else _read_body(response, cap, deadline)
        )
        return Answer(
            url, response.status, response.reason, response.getheaders(), data, total, complete
        )
    except TimeoutError:
        raise ToolError(f"no answer from {host} within {timeout:g} s") from None
    except (http.client.HTTPException, OSError) as exc:
        raise ToolError(f"the request to {host} failed: {type(exc).__name__}: {exc}") from None
    finally:
        connection.close()


def response_text(answer: Answer) -> tuple[str, bool]:
    """The body as text (charset from Content-Type, else UTF-8), marked when cut."""
    charset = "utf-8"
    for param in answer.header("content-type").split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip("\"'")
    try:
        "".encode(charset)
    except LookupError:
        charset = "utf-8"
    if answer.complete and answer.total <= len(answer.body):
        return answer.body.decode(charset, "replace"), False
    text, used = (
        decode_prefix(answer.body)
        if charset.lower() in ("utf-8", "utf8")
        else (answer.body.decode(charset, "replace"), len(answer.body))
    )
    if answer.complete:
        return text + truncation_marker(used, answer.total), True
    return (
        text + f"\n[... output truncated: at least {answer.total} bytes, the first {used} shown]",
        True,
    )


def header_dict(answer: Answer) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in answer.headers[:_MAX_HEADERS_SHOWN]:
        key = name.lower()
        out[key] = (f"{out[key]}, {value}" if key in out else value)[:_MAX_HEADER_CHARS]
    return out
