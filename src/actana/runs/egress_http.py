"""The HTTP side of the egress proxy: reading a proxy request's head, writing the head that is
forwarded, and the proxy's own answers. Every byte here comes from the sandbox: parsing is
strict (CRLF lines, token header names, one Host, no ambiguous body framing) and every error
says what to send instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_METHOD = re.compile(r"^[A-Z]{1,20}$")
# Headers that concern the hop to the proxy (RFC 9110 section 7.6.1) or that would let the
# sandbox talk to the proxy's own upstream connection in ways we do not forward.
_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-authorization",
    b"proxy-authenticate",
    b"te",
    b"trailer",
    b"upgrade",
    b"host",
}
_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
}
_SHOWN_TARGET_CHARS = 200


class RequestError(Exception):
    """The request cannot be proxied; the message says why and what to send instead.

    Attributes:
        what: what was asked, as far as it could be read (for the log line).
    """

    def __init__(self, message: str, what: str = "request") -> None:
        super().__init__(message)
        self.what = what


@dataclass
class ProxyRequest:
    """A parsed proxy request head.

    Attributes:
        method: e.g. `CONNECT`, `GET`.
        target: the request target as sent (authority for CONNECT, absolute URL otherwise).
        host: destination host (IPv6 without brackets), as sent (the policy normalises it).
        port: destination port.
        path: origin-form path and query to forward (empty for CONNECT).
        headers: the header lines, (name, value), in order.
    """

    method: str
    target: str
    host: str
    port: int
    path: str = ""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def describe(self) -> str:
        """`CONNECT host:port` or `GET http://...` for log lines (printable, capped)."""
        return printable(f"{self.method} {self.target}")


def printable(text: str) -> str:
    """One line of `text` with control characters escaped, cut to a readable length."""
    cleaned = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    if len(cleaned) > _SHOWN_TARGET_CHARS:
        return cleaned[:_SHOWN_TARGET_CHARS] + "..."
    return cleaned


def split_authority(authority: str, default_port: int | None, what: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or (with a default port) `host` -> (host, port).

    Raises:
        RequestError: no port where one is needed, a bad port, user info, an empty host.
    """
    if "@" in authority:
        raise RequestError("user info (user@host) is not accepted in the destination", what)
    if authority.startswith("["):
        host, sep, rest = authority[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise RequestError("a bracketed IPv6 host must look like [::1]:443", what)
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = authority.rpartition(":") if ":" in authority else (authority, "", "")
        if ":" in host:
            raise RequestError("an IPv6 host must be in brackets: [2001:db8::1]:443", what)
    if not port_text:
        if default_port is None:
            raise RequestError("CONNECT needs host:port, e.g. CONNECT example.com:443", what)
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RequestError(f"bad port {printable(port_text)!r} (1-65535)", what)
    if not host:
        raise RequestError("the destination has no host", what)
    return host, int(port_text)


def _parse_url(target: str, what: str) -> tuple[str, int, str]:
    scheme, sep, rest = target.partition("://")
    if not sep or "/" in scheme:
        raise RequestError(
            "this is an HTTP proxy: send absolute URLs (GET http://host/path) or CONNECT", what
        )
    if scheme.lower() != "http":
        raise RequestError(
            f"{printable(scheme)}:// cannot be forwarded: use CONNECT host:443 for https", what
        )
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    host, port = split_authority(rest[:end], 80, what)
    path = rest[end:].split("#", 1)[0]
    return host, port, path if path.startswith("/") else "/" + path


def parse_request(head: bytes) -> ProxyRequest:
    """Parse a request head that ends with an empty line.

    Raises:
        RequestError: anything that is not a well-formed proxy request.
    """
    lines = head.split(b"\r\n")
    try:
        request_line = lines[0].decode("ascii")
    except UnicodeDecodeError:
        raise RequestError("the request line must be ASCII") from None
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not _METHOD.match(parts[0]):
        raise RequestError("expected a request line like 'CONNECT example.com:443 HTTP/1.1'")
    method, target, _ = parts
    what = printable(f"{method} {target}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name) or b"\n" in line or b"\r" in line:
            raise RequestError(f"malformed header line {printable(repr(line)[2:-1])!r}", what)
        headers.append((name, value.strip(b" \t")))
    names = [n.lower() for n, _ in headers]
    if b"transfer-encoding" in names and b"content-length" in names:
        raise RequestError("both Transfer-Encoding and Content-Length: send one", what)
    if names.count(b"content-length") > 1:
        raise RequestError("more than one Content-Length header", what)
    if method == "CONNECT":
        host, port = split_authority(target, None, what)
        return ProxyRequest(method, target, host, port, headers=headers)
    host, port, path = _parse_url(target, what)
    return ProxyRequest(method, target, host, port, path, headers)


def forward_head(request: ProxyRequest, host: str) -> bytes:
    """The head sent to the destination: origin-form target, the checked host as Host, the
    sandbox's end-to-end headers, and `Connection: close` (one request per connection)."""
    authority = f"[{host}]" if ":" in host else host
    if request.port != 80:
        authority += f":{request.port}"
    lines = [f"{request.method} {request.path} HTTP/1.1".encode(), b"Host: " + authority.encode()]
    lines += [n + b": " + v for n, v in request.headers if n.lower() not in _HOP_BY_HOP]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def response(status: int, message: str) -> bytes:
    """A complete answer of the proxy itself: one line of text, then the connection closes."""
    body = (message + "\n").encode("utf-8", "replace")
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "X-Actana-Egress: refused\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body
