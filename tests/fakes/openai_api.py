"""A fake of OpenAI Chat Completions (`POST /v1/chat/completions`), strict about what we send.

    fake = FakeOpenAI("sk-test-key")              # the one key it accepts (None: no auth at all)
    fake.reply(tool_calls=[("bash", {"command": "echo hi"})]).reply(text="done")
    with serve(fake.app) as url:                  # the SDK's base_url is f"{url}/v1"
        ...
    fake.requests[0].headers["authorization"]     # every request, with headers and JSON body
    fake.keys_seen()                              # the set of every key presented
    assert fake.problems == []                    # requests it refused as malformed

It checks what the real service checks of our requests: `Authorization: Bearer <key>` (only the
configured key; a wrong one gets OpenAI's 401 with `code: invalid_api_key`, whose message echoes
a masked key as the real one does), a JSON body with `model` and `messages` and no unknown
field, valid roles, assistant `tool_calls` of the function type with string arguments, `tool`
messages that answer a tool call of the assistant message before them (and every call answered
before the conversation goes on), well-formed function tools (and no empty `tools` list), and
`stream_options` only with `stream`. Errors have the real shape
(`{"error": {"message", "type", "param", "code"}}`).

Answers are planned per test, in order: `reply(text=..., tool_calls=[...])`, where a tool call's
arguments may be a raw string to play a model that writes broken JSON and `cut_after=n` drops
the connection mid-stream; `fail(status, ...)` (OpenAI's own type, code and message for 400
context_length_exceeded, 403, 404, 429, 500, 503) or `rate_limited(retry_after_ms)`. A request
for a model outside `models` (when given) gets OpenAI's 404 model_not_found.
Streamed answers are real SSE `chat.completion.chunk` lines: a role chunk, text in pieces,
tool_calls deltas by index (id and name first, the arguments split over several chunks), a chunk
with the finish reason, a usage chunk with empty choices when `include_usage` was asked, then
`data: [DONE]`.

It is the `openai_compatible` fake too: `reject_stream_options=True` refuses `stream_options`
with a 400 that names it (as llama.cpp and older vLLM do), `send_usage=False` never reports usage.
`strict_max_tokens=True` (the default) refuses `max_tokens` as OpenAI's reasoning models do.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOP_LEVEL = {
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "stream",
    "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop",
    "seed", "user", "metadata", "store", "reasoning_effort", "response_format", "logprobs",
    "top_logprobs", "frequency_penalty", "presence_penalty", "logit_bias", "service_tier",
}  # fmt: skip
ROLES = {"system", "developer", "user", "assistant", "tool"}
MESSAGE_FIELDS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
}
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ERRORS = {
    400: ("invalid_request_error", None),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
MESSAGES = {
    400: "This model's maximum context length is 128000 tokens. However, your messages "
    "resulted in 131072 tokens. Please reduce the length of the messages.",
    403: "Country, region, or territory not supported",
    429: "Rate limit reached for gpt-x in organization org-fake on requests per min (RPM): "
    "Limit 3, Used 3, Requested 1. Please try again in 20ms.",
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The engine is currently overloaded, please try again later",
}


class Invalid(Exception):
    """A request the real API would refuse with 400 invalid_request_error."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class Planned:
    """One planned answer: a message (text and/or tool calls), or an HTTP error."""

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    status: int = 200
    error: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None


@dataclass
class Recorded:
    headers: dict[str, str]
    body: Any
    status: int = 0


class FakeOpenAI:
    """The fake service; `app` is the ASGI app to `serve` (the SDK's base_url: `<url>/v1`)."""

    def __init__(
        self,
        api_key: str | None,
        *,
        models: set[str] | None = None,
        reject_stream_options: bool = False,
        send_usage: bool = True,
        strict_max_tokens: bool = True,
    ) -> None:
        self.api_key = api_key
        self.models = models
        self.reject_stream_options = reject_stream_options
        self.send_usage = send_usage
        self.strict_max_tokens = strict_max_tokens
        self.requests: list[Recorded] = []
        self.problems: list[str] = []
        self._planned: deque[Planned] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])],
            exception_handlers={404: _not_found, 405: _not_found},
        )

    def reply(
        self,
        text: str | None = None,
        tool_calls: list[tuple[str, dict[str, Any] | str]] | None = None,
        finish_reason: str | None = None,
        usage: tuple[int, int] | None = None,
        cut_after: int | None = None,
    ) -> FakeOpenAI:
        """Plan a message: `text` and one function call per `(name, arguments)`; arguments
        given as a string are sent as they are (broken JSON included). `cut_after=n` drops the
        connection after n chunks of the stream, as a failing network or server does."""
        planned = Planned(text, list(tool_calls or []), finish_reason, usage, cut_after=cut_after)
        with self._lock:
            self._planned.append(planned)
        return self

    def fail(
        self,
        status: int,
        message: str = "",
        *,
        code: str | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> FakeOpenAI:
        """Plan an HTTP error; type, code and message default to what OpenAI sends for it."""
        default_type, default_code = ERRORS.get(status, ("server_error", None))
        error = {
            "message": message or MESSAGES.get(status, f"planned failure {status}"),
            "type": error_type or default_type,
            "param": "messages" if status == 400 else None,
            "code": code if code is not None else default_code,
        }
        if status == 400 and code is None and not message:
            error["code"] = "context_length_exceeded"
        with self._lock:
            self._planned.append(Planned(status=status, error=error, headers=dict(headers or {})))
        return self

    def rate_limited(self, retry_after_ms: int = 50) -> FakeOpenAI:
        """Plan a 429 with OpenAI's rate-limit headers."""
        return self.fail(
            429,
            headers={
                "retry-after-ms": str(retry_after_ms),
                "retry-after": str(max(1, retry_after_ms // 1000)),
                "x-ratelimit-limit-requests": "3",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{retry_after_ms}ms",
            },
        )

    @property
    def pending(self) -> int:
        """Planned answers not given yet."""
        with self._lock:
            return len(self._planned)

    def keys_seen(self) -> set[str]:
        """Every key a request presented: a bearer `authorization`, or Azure's `api-key`."""
        with self._lock:
            headers = [r.headers for r in self.requests]
        keys = {h["api-key"] for h in headers if "api-key" in h}
        for h in headers:
            scheme, _, token = h.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and token:
                keys.add(token)
        return keys

    @property
    def answered(self) -> list[Recorded]:
        """The requests that got a 200."""
        with self._lock:
            return [r for r in self.requests if r.status == 200]

    # --- the endpoint --------------------------------------------------------------------------

    async def _completions(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        record = Recorded(headers=dict(request.headers), body=body)
        with self._lock:
            self.requests.append(record)
        response = self._answer(request, body)
        record.status = response.status_code
        return response

    def _answer(self, request: Request, body: Any) -> Response:
        refused = self._check_key(request.headers.get("authorization"))
        if refused is not None:
            return refused
        if not request.headers.get("content-type", "").startswith("application/json"):
            return self._invalid(Invalid("Invalid Content-Type header, expected application/json"))
        try:
            validate(body, strict_max_tokens=self.strict_max_tokens)
        except Invalid as exc:
            return self._invalid(exc)
        if self.reject_stream_options and "stream_options" in body:
            # llama.cpp / older vLLM: not a malformed request of ours, a server limitation.
            return _error(400, "Unsupported param: stream_options", param="stream_options")
        if self.models is not None and body["model"] not in self.models:
            return _error(
                404,
                f"The model `{body['model']}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        with self._lock:
            planned = self._planned.popleft() if self._planned else None
        if planned is None:
            self.problems.append("a request came after the plan ran out")
            return _error(400, "the fake has no planned answer left", error_type="fake_error")
        if planned.status != 200:
            return JSONResponse(
                {"error": planned.error},
                status_code=planned.status,
                headers={"x-request-id": _request_id(), **planned.headers},
            )
        completion = self._completion(body, planned)
        if body.get("stream"):
            usage = self.send_usage and bool(
                (body.get("stream_options") or {}).get("include_usage")
            )
            return StreamingResponse(
                _sse(completion, usage=usage, cut_after=planned.cut_after),
                media_type="text/event-stream; charset=utf-8",
                headers={"x-request-id": _request_id(), "cache-control": "no-cache"},
            )
        if not self.send_usage:
            completion.pop("usage")
        return JSONResponse(completion, headers={"x-request-id": _request_id()})

    def _check_key(self, authorization: str | None) -> Response | None:
        if self.api_key is None:
            return None  # a keyless local server
        if not authorization or not authorization.startswith("Bearer "):
            return _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code=None,
            )
        given = authorization.removeprefix("Bearer ")
        if given != self.api_key:
            # The real service echoes the key, masked but for its first and last characters.
            masked = given[:3] + "*" * max(4, len(given) - 7) + given[-4:]
            return _error(
                401,
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        return None

    def _invalid(self, exc: Invalid) -> Response:
        self.problems.append(str(exc))
        return _error(400, str(exc), param=exc.param)

    def _completion(self, body: dict[str, Any], planned: Planned) -> dict[str, Any]:
        calls = [
            {
                "id": f"call_{next(self._ids):06d}fake",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for name, args in planned.tool_calls
        ]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": planned.text,
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls
        prompt, completion = planned.usage or (
            len(json.dumps(body["messages"])) // 4 + 1,
            len(json.dumps(message)) // 4 + 1,
        )
        return {
            "id": f"chatcmpl-fake{next(self._ids):06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": planned.finish_reason or ("tool_calls" if calls else "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }


# --- request validation ---------------------------------------------------------------------


def validate(body: Any, *, strict_max_tokens: bool = True) -> None:
    """Refuse (with `Invalid`) what the real service refuses of the requests we make."""
    if not isinstance(body, dict):
        raise Invalid("We could not parse the JSON body of your request.")
    extra = sorted(set(body) - TOP_LEVEL)
    if extra:
        raise Invalid(f"Unrecognized request argument supplied: {extra[0]}")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("you must provide a model parameter", "model")
    _validate_options(body, strict_max_tokens)
    _validate_tools(body.get("tools"))
    _validate_messages(body.get("messages"))


def _validate_options(body: dict[str, Any], strict_max_tokens: bool) -> None:
    if "stream" in body and not isinstance(body["stream"], bool):
        raise Invalid("Invalid type for 'stream': expected a boolean.", "stream")
    if "stream_options" in body:
        if not body.get("stream"):
            raise Invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
            )
        options = body["stream_options"]
        if not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"}:
            raise Invalid("Invalid 'stream_options': unknown field.", "stream_options")
    if strict_max_tokens and "max_tokens" in body:
        raise Invalid(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
            "max_tokens",
        )
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if name in body and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise Invalid(f"Invalid '{name}': integer below minimum value.", name)


def _validate_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise Invalid("Invalid type for 'tools': expected an array.", "tools")
    if not tools:
        raise Invalid("Invalid 'tools': empty array. Expected an array with minimum length 1.")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or set(tool)
            != {
                "type",
                "function",
            }
        ):
            raise Invalid(f"Invalid '{where}': expected {{type: 'function', function}}.", where)
        function = tool["function"]
        if not isinstance(function, dict) or set(function) - {
            "name",
            "description",
            "parameters",
            "strict",
        }:
            raise Invalid(f"Invalid '{where}.function': unknown field.", where)
        name = function.get("name")
        if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
            raise Invalid(
                f"Invalid '{where}.function.name': string does not match pattern. Expected a "
                "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                f"{where}.function.name",
            )
        if name in names:
            raise Invalid(f"Invalid 'tools': duplicate function name {name}.", "tools")
        names.add(name)
        if "description" in function and not isinstance(function["description"], str):
            raise Invalid(f"Invalid type for '{where}.function.description'.", where)
        parameters = function.get("parameters", {"type": "object"})
        if not isinstance(parameters, dict) or parameters.get("type") != "object":
            raise Invalid(
                f"Invalid schema for function '{name}': schema must be a JSON Schema of "
                "'type: \"object\"'.",
                f"{where}.function.parameters",
            )


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("Invalid 'messages': empty array. Expected an array with minimum length 1.")
    open_calls: list[str] = []  # ids of the last assistant message not answered yet
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise Invalid(f"Invalid type for '{where}': expected an object.", where)
        role = message.get("role")
        if role not in ROLES:
            raise Invalid(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                "'tool', 'function', and 'developer'.",
                f"{where}.role",
            )
        extra = sorted(set(message) - MESSAGE_FIELDS[role])
        if extra:
            raise Invalid(f"Unrecognized request argument supplied: {where}.{extra[0]}", where)
        if role == "tool":
            _check_tool_message(message, open_calls, where)
            continue
        if open_calls:
            raise Invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(open_calls)}",
                "messages",
            )
        if role == "assistant":
            open_calls = _check_assistant(message, where)
        elif not _is_text(message.get("content")):
            raise Invalid(f"Invalid type for '{where}.content': expected a string.", where)
    if open_calls:
        raise Invalid(
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            f"to each 'tool_call_id'. The following tool_call_ids did not have response "
            f"messages: {', '.join(open_calls)}",
            "messages",
        )


def _is_text(content: Any) -> bool:
    if isinstance(content, str):
        return True
    return isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    )


def _check_assistant(message: dict[str, Any], where: str) -> list[str]:
    content = message.get("content")
    calls = message.get("tool_calls")
    if content is not None and not _is_text(content):
        raise Invalid(f"Invalid type for '{where}.content': expected a string or null.", where)
    if calls is None:
        if content is None:
            raise Invalid(
                f"Invalid value for '{where}.content': expected content when there are no "
                "tool_calls.",
                where,
            )
        return []
    if not isinstance(calls, list) or not calls:
        raise Invalid(f"Invalid '{where}.tool_calls': empty array.", where)
    ids: list[str] = []
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        if (
            not isinstance(call, dict)
            or call.get("type") != "function"
            or not isinstance(call.get("id"), str)
            or not call["id"]
            or not isinstance(call.get("function"), dict)
        ):
            raise Invalid(f"Invalid '{at}': expected {{id, type: 'function', function}}.", at)
        function = call["function"]
        if not isinstance(function.get("name"), str) or not isinstance(
            function.get("arguments"), str
        ):
            raise Invalid(
                f"Invalid type for '{at}.function.arguments': expected a string.",
                f"{at}.function",
            )
        if call["id"] in ids:
            raise Invalid(f"Duplicate tool_call id {call['id']} in '{where}'.", at)
        ids.append(call["id"])
    return ids


def _check_tool_message(message: dict[str, Any], open_calls: list[str], where: str) -> None:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise Invalid(f"Missing required parameter: '{where}.tool_call_id'.", where)
    if call_id not in open_calls:
        raise Invalid(
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
            "message with 'tool_calls'.",
            f"{where}.role",
        )
    open_calls.remove(call_id)
    if not _is_text(message.get("content")):
        raise Invalid(f"Invalid type for '{where}.content': expected a string.", where)


# --- responses -------------------------------------------------------------------------------


def _request_id() -> str:
    return f"req_fake{threading.get_ident():x}"


def _error(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> Response:
    body = {
        "error": {
            "message": message,
            "type": error_type or ERRORS.get(status, ("invalid_request_error", None))[0],
            "param": param,
            "code": code,
        }
    }
    return JSONResponse(body, status_code=status, headers={"x-request-id": _request_id()})


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, f"Invalid URL ({request.method} {request.url.path})")


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class Dropped(Exception):
    """Raised inside a streamed answer: the server drops the connection mid-stream."""


async def _sse(
    completion: dict[str, Any], *, usage: bool, cut_after: int | None = None
) -> AsyncIterator[bytes]:
    """The completion as the real stream of `chat.completion.chunk` lines (cut short after
    `cut_after` chunks, when given, by dropping the connection)."""
    for count, line in enumerate(_chunks(completion, usage=usage)):
        if count == cut_after:
            raise Dropped("the fake drops the connection as planned")
        yield line


def _chunks(completion: dict[str, Any], *, usage: bool) -> Iterator[bytes]:
    choice = completion["choices"][0]
    message = choice["message"]
    head = {k: completion[k] for k in ("id", "created", "model", "service_tier")}
    head.update(object="chat.completion.chunk", system_fingerprint="fp_fake")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {
            **head,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if usage:
            data["usage"] = None
        return f"data: {json.dumps(data)}\n\n".encode()

    yield chunk({"role": "assistant", "content": "" if message["content"] else None})
    for piece in _pieces(message["content"] or "", 8) if message["content"] else []:
        yield chunk({"content": piece})
    for index, call in enumerate(message.get("tool_calls", [])):
        first = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        yield chunk({"tool_calls": [first]})
        for piece in _pieces(call["function"]["arguments"], 7):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, choice["finish_reason"])
    if usage:
        last = {**head, "choices": [], "usage": completion["usage"]}
        yield f"data: {json.dumps(last)}\n\n".encode()
    yield b"data: [DONE]\n\n"
