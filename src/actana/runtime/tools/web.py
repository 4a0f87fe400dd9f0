"""`http_request` and `web_fetch`: the web, through the run's egress proxy only.

The sandbox has no network; both tools talk to the egress proxy on its unix socket
(`ToolContext.egress_socket`) in the HTTP proxy protocol: `GET http://host/...` for http, and
`CONNECT host:443` then TLS (verified against the system CA bundle, name checked) for https.
The proxy, outside the sandbox, decides every destination, every redirect hop included; its
refusal reason is handed to the model as is. Under the `none` policy the tools refuse before
trying, with a message saying so.
"""

from __future__ import annotations

import time
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import urljoin

from actana.protocol.payloads import RunLimits
from actana.runtime.tools.base import Invocation, Tool, ToolError, cap_text, schema
from actana.runtime.tools.web_client import (
    TEXT_TYPES,
    fetch,
    header_dict,
    response_text,
)

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Set by the tool itself (framing, one request per connection) or meant for the proxy hop.
_RESERVED_HEADERS = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
    "accept-encoding",
}
_REDIRECTS = {301, 302, 303, 307, 308}
_MAX_REDIRECTS = 5


def _egress_socket(inv: Invocation) -> str:
    if inv.context.network.policy == "none":
        raise ToolError(
            "network access is off for this run: the environment's network policy is none. "
            "Work with the files you have, or ask for an environment whose policy allows it."
        )
    if not inv.context.egress_socket:
        raise ToolError("this sandbox has no egress proxy, so no network access")
    return inv.context.egress_socket


def http_request(inv: Invocation) -> dict[str, Any]:
    """Send one HTTP request; redirects are returned, not followed."""
    egress = _egress_socket(inv)
    method = inv.args.get("method", "GET").upper()
    if method not in _METHODS:
        raise ToolError(f"method must be one of {', '.join(_METHODS)}, not {method!r}")
    headers: dict[str, str] = {}
    for name, value in (inv.args.get("headers") or {}).items():
        if not isinstance(value, str) or "\n" in value or "\r" in value or "\n" in name:
            raise ToolError(f"header {name!r}: the value must be one line of text")
        if name.lower() in _RESERVED_HEADERS:
            raise ToolError(f"header {name!r} is set by the tool itself; leave it out")
        headers[name] = value
    body = inv.args.get("body")
    timeout = min(float(inv.args.get("timeout_sec", inv.timeout_sec)), inv.timeout_sec)
    answer = fetch(
        egress,
        method,
        inv.args["url"],
        headers,
        None if body is None else body.encode(),
        timeout,
        inv.output_cap,
    )
    text, truncated = response_text(answer)
    return {
        "status": answer.status,
        "reason": answer.reason,
        "headers": header_dict(answer),
        "body": text,
        "truncated": truncated,
    }


class _Reader(HTMLParser):
    """HTML reduced to readable text: scripts, styles and the like dropped, block elements on
    their own lines, list items dashed; links collected with their text."""

    _SKIP: ClassVar[set[str]] = {
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "head",
        "iframe",
        "object",
    }
    _BLOCKS: ClassVar[set[str]] = {
        "p",
        "div",
        "br",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "header",
        "footer",
        "nav",
        "main",
        "aside",
        "pre",
        "blockquote",
        "table",
        "ul",
        "ol",
        "hr",
        "dl",
        "dt",
        "dd",
        "form",
        "figure",
        "figcaption",
        "li",
    }

    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base, self.parts, self.title = base, [""], ""
        self.links: list[dict[str, str]] = []
        self._skipping: list[str] = []
        self._in_title = False
        self._href: str | None = None
        self._link_start = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping.append(tag)
        self._in_title = tag == "title"
        if tag in self._BLOCKS:
            self.parts.append("- " if tag == "li" else "")
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._link_start = len("".join(self.parts))

    def handle_endtag(self, tag: str) -> None:
        if self._skipping and self._skipping[-1] == tag:
            self._skipping.pop()
        self._in_title = False
        if tag in self._BLOCKS:
            self.parts.append("")
        if tag == "a" and self._href and len(self.links) < 100:
            text = " ".join("".join(self.parts)[self._link_start :].split())
            if not self._href.startswith(("javascript:", "#", "mailto:")):
                self.links.append({"text": text[:200], "url": urljoin(self.base, self._href)})
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self.parts[-1] += data

    def text(self) -> str:
        lines = (" ".join(part.split()) for part in self.parts)
        return "\n".join(line for line in lines if line and line != "-")


def web_fetch(inv: Invocation) -> dict[str, Any]:
    """GET a page (following redirects, each hop checked by the proxy) as readable text."""
    egress = _egress_socket(inv)
    url = inv.args["url"]
    max_bytes = int(inv.args.get("max_bytes", 4 * inv.output_cap))
    deadline = time.monotonic() + inv.timeout_sec
    for _ in range(_MAX_REDIRECTS + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ToolError(f"web_fetch ran out of time ({inv.timeout_sec:g} s) at {url}")
        try:
            answer = fetch(
                egress,
                "GET",
                url,
                {"Accept": "text/html, text/*;q=0.9, */*;q=0.5"},
                None,
                remaining,
                max_bytes,
            )
        except ToolError as exc:
            if url == inv.args["url"]:
                raise
            raise ToolError(f"redirected to {url}, which failed: {exc}") from None
        location = answer.header("location")
        if answer.status not in _REDIRECTS or not location:
            break
        url = urljoin(url, location)
    else:
        raise ToolError(f"more than {_MAX_REDIRECTS} redirects; the last pointed to {url}")
    kind = answer.header("content-type").split(";")[0].strip().lower() or "text/plain"
    if not any(marker in kind for marker in TEXT_TYPES):
        raise ToolError(
            f"{url} is {kind} ({answer.total} bytes), not text; web_fetch reads "
            "pages: download files with bash (curl, through the proxy) instead"
        )
    text, truncated = response_text(answer)
    result: dict[str, Any] = {"url": url, "status": answer.status, "content_type": kind}
    if "html" in kind:
        reader = _Reader(url)
        reader.feed(text)
        reader.close()
        text = reader.text()
        result |= {"title": " ".join(reader.title.split()), "links": reader.links[:50]}
    text, cut = cap_text(text, inv.output_cap)
    return result | {"text": text, "truncated": truncated or cut}


def tools(limits: RunLimits) -> list[Tool]:
    """http_request and web_fetch, with the run's limits applied."""
    timeout = float(limits.tool_timeout_sec)
    cap = limits.tool_output_bytes
    url = {"type": "string", "minLength": 1, "description": "An http:// or https:// URL."}
    network = (
        "Goes out through the run's egress proxy: the environment's network policy decides "
        "which hosts are reachable (none: nothing; allowlist: listed domains only; private and "
        "link-local addresses never), and a refusal says why."
    )
    return [
        Tool(
            "http_request",
            "Send one HTTP request and return status, reason, headers (lower-case names) and "
            f"body (text, cut at {cap} bytes with a marker; truncated says so). Redirects are "
            f"returned as they are (status 3xx and a location header), not followed. {network}",
            schema(
                {
                    "method": {"type": "string", "enum": _METHODS, "description": "Default GET."},
                    "url": url,
                    "headers": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "Request headers, name to value (Host, Content-Length "
                        "and Connection are set by the tool).",
                    },
                    "body": {"type": "string", "description": "Request body (UTF-8 text)."},
                    "timeout_sec": {
                        "type": "integer",
                        "minimum": 1,
                        "description": f"Seconds to wait (default and maximum {timeout:g}).",
                    },
                },
                ["url"],
            ),
            timeout,
            cap,
            http_request,
        ),
        Tool(
            "web_fetch",
            "Fetch a web page with GET and return it as readable text: HTML is reduced to its "
            "text (scripts and styles dropped) with the title and up to 50 links; other text "
            f"types are returned as they are. Text is cut at {cap} bytes (truncated says so). "
            f"Redirects are followed (at most {_MAX_REDIRECTS}), each hop checked. {network}",
            schema(
                {
                    "url": url,
                    "max_bytes": {
                        "type": "integer",
                        "minimum": 1024,
                        "maximum": 16 * 1024 * 1024,
                        "description": f"Most bytes to download (default {4 * cap}).",
                    },
                },
                ["url"],
            ),
            timeout,
            cap,
            web_fetch,
        ),
    ]
