"""A fake of the Anthropic Messages API (`POST /v1/messages`), strict about what we send.

It checks what the real service checks for our requests: the API key, in `x-api-key` or as a
bearer `authorization` (the SDK 2.x sends the latter), and only the configured one; the
`anthropic-version` header; a JSON body with `model`, `max_tokens` and `messages`
whose roles alternate and start with `user`, well-formed content blocks, `tool_result` blocks
that answer exactly the `tool_use` ids of the assistant turn before them (and come first in
their turn), tool definitions with an object `input_schema`, and no unknown fields. Errors have
the real shape (`{"type": "error", "error": {"type": ..., "message": ...}}`).

Answers are planned per test, in order: `reply(text=..., tool_calls=[...])` or
`fail(status, ...)`. Streamed answers use the real SSE events (message_start, content blocks
with text_delta and input_json_delta pieces, ping, message_delta with the stop reason and usage,
message_stop). Every request is recorded with its headers and body; every request the fake
refused as malformed is also listed in `problems`, so a test can tell a bug in what we send from
a failure it planned.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
TOP_LEVEL = {
    "model", "max_tokens", "messages", "system", "tools", "tool_choice", "stream", "metadata",
    "stop_sequences", "temperature", "top_p", "top_k", "thinking", "service_tier",
}  # fmt: skip
TOOL_FIELDS = {"name", "description", "input_schema", "cache_control", "type"}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


class ConnectionCut(Exception):
    """Raised inside a stream: the server drops the connection mid-body, as a planned failure."""


class Invalid(Exception):
    """A request the real API would refuse with 400 invalid_request_error."""


@dataclass
class Planned:
    """One planned answer: a message (text and/or tool calls), or an HTTP error."""

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    stop_reason: str | None = None
    status: int = 200
    error_message: str = ""
    retry_after: str | None = None
    usage: tuple[int, int] | None = None
    stream_error: int | None = None
    """In a stream: an `error` event of this status's type after the first content block."""
    delay: float = 0.0
    """Seconds to wait before answering."""
    cut: bool = False
    """In a stream: the connection drops after the first content block."""


@dataclass
class Recorded:
    headers: dict[str, str]
    body: Any
    status: int = 0
    at: float = field(default_factory=time.monotonic)


class FakeAnthropic:
    """The fake service; `app` is the ASGI app to `serve`."""

    def __init__(self, api_key: str, models: set[str] | None = None) -> None:
        self.api_key = api_key
        self.models = models
        self.requests: list[Recorded] = []
        self.problems: list[str] = []
        self._planned: deque[Planned] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[Route("/v1/messages", self._messages, methods=["POST"])],
            exception_handlers={404: _not_found, 405: _not_found},
        )

    def reply(
        self,
        text: str | None = None,
        tool_calls: list[tuple[str, dict[str, Any]]] | None = None,
        stop_reason: str | None = None,
        usage: tuple[int, int] | None = None,
        stream_error: int | None = None,
        delay: float = 0.0,
        cut: bool = False,
    ) -> FakeAnthropic:
        """Plan a message: `text`, then one tool_use block per `(name, input)`, after `delay`
        seconds. Streamed with `stream_error`, it breaks off after its first block with an
        `error` event; with `cut`, the connection drops there."""
        planned = Planned(text, list(tool_calls or []), stop_reason, usage=usage)
        planned.stream_error, planned.delay, planned.cut = stream_error, delay, cut
        with self._lock:
            self._planned.append(planned)
        return self

    def fail(self, status: int, message: str = "", retry_after: str | None = None) -> FakeAnthropic:
        """Plan an HTTP error (with a `retry-after` header when given)."""
        default = {429: "Number of request tokens has exceeded your per-minute rate limit"}
        text = message or default.get(status, f"planned failure {status}")
        with self._lock:
            self._planned.append(
                Planned(status=status, error_message=text, retry_after=retry_after)
            )
        return self

    def keys_seen(self) -> set[str]:
        """Every API key any request presented, in either header."""
        with self._lock:
            return {key for r in self.requests for key in presented_keys(r.headers)}

    @property
    def pending(self) -> int:
        """Planned answers not given yet."""
        with self._lock:
            return len(self._planned)

    # --- the endpoint --------------------------------------------------------------------------

    async def _messages(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        record = Recorded(headers=dict(request.headers), body=body)
        with self._lock:
            self.requests.append(record)
        response, delay = self._answer(request, body)
        record.status = response.status_code
        if delay:
            await anyio.sleep(delay)
        return response

    def _answer(self, request: Request, body: Any) -> tuple[Response, float]:
        """The response to a request, and how long to wait before giving it."""
        response = self._check(request, body)
        if response is not None:
            return response, 0.0
        with self._lock:
            planned = self._planned.popleft() if self._planned else None
        if planned is None:
            self.problems.append("a request came after the plan ran out")
            return _error(500, "the fake has no planned answer left"), 0.0
        if planned.status != 200:
            headers = {"retry-after": planned.retry_after} if planned.retry_after else {}
            return _error(planned.status, planned.error_message, headers), planned.delay
        message = self._message(body, planned)
        if body.get("stream"):
            stream = StreamingResponse(
                _sse(message, planned),
                media_type="text/event-stream",
                headers={"request-id": _request_id(), "cache-control": "no-cache"},
            )
            return stream, planned.delay
        return JSONResponse(message, headers={"request-id": _request_id()}), planned.delay

    def _check(self, request: Request, body: Any) -> Response | None:
        """The error response for a request the service would refuse, else None."""
        keys = presented_keys(request.headers)
        if not keys:
            return _error(401, "x-api-key header is required")
        if keys != [self.api_key]:
            return _error(401, "invalid x-api-key")
        version = request.headers.get("anthropic-version")
        if version is None:
            return self._invalid("anthropic-version: header is required")
        if not _API_VERSION.match(version):
            return self._invalid(f"anthropic-version: invalid version {version!r}")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return self._invalid("content-type must be application/json")
        try:
            validate(body)
        except Invalid as exc:
            return self._invalid(str(exc))
        if self.models is not None and body["model"] not in self.models:
            return _error(404, f"model: {body['model']}")
        return None

    def _invalid(self, message: str) -> Response:
        self.problems.append(message)
        return _error(400, message)

    def _message(self, body: dict[str, Any], planned: Planned) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if planned.text is not None:
            content.append({"type": "text", "text": planned.text})
        for name, args in planned.tool_calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{next(self._ids):04d}",
                    "name": name,
                    "input": args,
                }
            )
        in_tokens, out_tokens = planned.usage or (
            len(json.dumps(body)) // 4 + 1,
            len(json.dumps(content)) // 4 + 1,
        )
        return {
            "id": f"msg_{next(self._ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": planned.stop_reason
            or ("tool_use" if planned.tool_calls else "end_turn"),
            "stop_sequence": None,
            "usage": {
                "input_tokens": in_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": out_tokens,
            },
        }


def presented_keys(headers: Mapping[str, str]) -> list[str]:
    """The keys a request presents: `x-api-key`, and a bearer `authorization` (the SDK's 2.x
    way; the service takes either). Two headers with two different keys are refused."""
    keys = []
    if "x-api-key" in headers:
        keys.append(headers["x-api-key"])
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        keys.append(token)
    return sorted(set(keys))


# --- request validation ---------------------------------------------------------------------


def validate(body: Any) -> None:
    """Refuse (with `Invalid`) what the real service refuses of the requests we make."""
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    extra = sorted(set(body) - TOP_LEVEL)
    if extra:
        raise Invalid(f"{extra[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise Invalid("max_tokens: Field required (an integer >= 1)")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise Invalid("stream: Input should be a valid boolean")
    _validate_system(body.get("system"))
    tools = _validate_tools(body.get("tools"))
    _validate_messages(body.get("messages"), tools)


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list) or not all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in system
    ):
        raise Invalid("system: Input should be a valid string or a list of text blocks")


def _validate_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise Invalid("tools: Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise Invalid(f"tools.{i}: Input should be an object")
        extra = sorted(set(tool) - TOOL_FIELDS)
        if extra:
            raise Invalid(f"tools.{i}.{extra[0]}: Extra inputs are not permitted")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise Invalid(f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        if name in names:
            raise Invalid(f"tools: Tool names must be unique ({name})")
        names.add(name)
        if "description" in tool and not isinstance(tool["description"], str):
            raise Invalid(f"tools.{i}.description: Input should be a valid string")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise Invalid(f"tools.{i}.input_schema: Input should be a JSON schema of type object")
    return names


def _validate_messages(messages: Any, tools: set[str]) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    previous_uses: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise Invalid(f"messages.{i}: a message has only `role` and `content`")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise Invalid('messages: first message must use the "user" role')
        if i > 0 and role == messages[i - 1].get("role"):
            raise Invalid(f'messages: roles must alternate between "user" and "assistant" ({i})')
        blocks = _content_blocks(message.get("content"), i, last=i == len(messages) - 1)
        if role == "user":
            _check_results(blocks, previous_uses, i)
            previous_uses = []
        else:
            previous_uses = _check_uses(blocks, tools, i)


def _content_blocks(content: Any, i: int, *, last: bool) -> list[dict[str, Any]]:
    if isinstance(content, str):
        if not content and not last:
            raise Invalid(f"messages.{i}: all messages must have non-empty content")
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or (not content and not last):
        raise Invalid(f"messages.{i}: all messages must have non-empty content")
    for j, block in enumerate(content):
        if not isinstance(block, dict):
            raise Invalid(f"messages.{i}.content.{j}: Input should be an object")
        _check_block(block, f"messages.{i}.content.{j}")
    return content


BLOCK_FIELDS = {
    "text": {"type", "text", "cache_control", "citations"},
    "tool_use": {"type", "id", "name", "input", "cache_control"},
    "tool_result": {"type", "tool_use_id", "content", "is_error", "cache_control"},
}


def _check_block(block: dict[str, Any], where: str) -> None:
    kind = block.get("type")
    if kind not in BLOCK_FIELDS:
        raise Invalid(f"{where}.type: unknown content block type {kind!r}")
    extra = sorted(set(block) - BLOCK_FIELDS[kind])
    if extra:
        raise Invalid(f"{where}.{extra[0]}: Extra inputs are not permitted")
    if kind == "text":
        if not isinstance(block.get("text"), str) or not block["text"].strip():
            raise Invalid(f"{where}: text content blocks must contain non-whitespace text")
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str) or not _TOOL_ID.match(block["id"]):
            raise Invalid(f"{where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if not isinstance(block.get("name"), str) or not isinstance(block.get("input"), dict):
            raise Invalid(f"{where}: tool_use needs a `name` and an object `input`")
    else:
        if not isinstance(block.get("tool_use_id"), str):
            raise Invalid(f"{where}.tool_use_id: Field required")
        if "is_error" in block and not isinstance(block["is_error"], bool):
            raise Invalid(f"{where}.is_error: Input should be a valid boolean")
        if not isinstance(block.get("content", ""), (str, list)):
            raise Invalid(f"{where}.content: Input should be a string or a list of blocks")


def _check_uses(blocks: list[dict[str, Any]], tools: set[str], i: int) -> list[str]:
    ids = []
    for block in blocks:
        if block["type"] == "tool_result":
            raise Invalid(f"messages.{i}: tool_result blocks belong in user messages")
        if block["type"] == "tool_use":
            if not tools:
                raise Invalid(
                    "Requests which include `tool_use` or `tool_result` blocks must define tools."
                )
            ids.append(block["id"])
    if len(set(ids)) != len(ids):
        raise Invalid(f"messages.{i}: tool_use ids must be unique")
    return ids


def _check_results(blocks: list[dict[str, Any]], uses: list[str], i: int) -> None:
    results = [b for b in blocks if b["type"] == "tool_result"]
    if any(b["type"] == "tool_use" for b in blocks):
        raise Invalid(f"messages.{i}: tool_use blocks belong in assistant messages")
    if blocks[: len(results)] != results:
        raise Invalid(f"messages.{i}: tool_result blocks must come first in their message")
    answered = [b["tool_use_id"] for b in results]
    unknown = [a for a in answered if a not in uses]
    if unknown:
        raise Invalid(
            f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
            f"{unknown[0]}. Each `tool_result` block must have a corresponding `tool_use` block "
            "in the previous message."
        )
    missing = [u for u in uses if u not in answered]
    if missing:
        raise Invalid(
            f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
            f"after: {missing[0]}. Each `tool_use` block must have a corresponding `tool_result` "
            "block in the next message."
        )


# --- responses -------------------------------------------------------------------------------


def _request_id() -> str:
    return f"req_fake{threading.get_ident():x}"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
    }
    return JSONResponse(
        body, status_code=status, headers={"request-id": _request_id(), **(headers or {})}
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, "Not Found")


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


async def _sse(message: dict[str, Any], planned: Planned) -> AsyncIterator[bytes]:
    """The message as the real service streams it."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 1}
    yield _event("message_start", {"type": "message_start", "message": start})
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], 5)]
        else:
            opening = {**block, "input": {}}
            # The real service starts with an empty piece, then cuts the JSON anywhere.
            pieces = ["", *_pieces(json.dumps(block["input"]), 7)]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        yield _event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
        if index == 0:
            yield _event("ping", {"type": "ping"})
        for delta in deltas:
            yield _event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield _event("content_block_stop", {"type": "content_block_stop", "index": index})
        if planned.stream_error is not None:
            kind = ERROR_TYPES.get(planned.stream_error, "api_error")
            error = {"type": kind, "message": "Overloaded" if kind == "overloaded_error" else kind}
            yield _event("error", {"type": "error", "error": error})
            return
        if planned.cut:
            raise ConnectionCut
    yield _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield _event("message_stop", {"type": "message_stop"})
