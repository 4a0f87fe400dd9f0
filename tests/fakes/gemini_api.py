"""A fake of the Gemini API (generativelanguage, `v1beta` and `v1`), strict about what we send.

Routes, as the `google-genai` SDK calls them: `POST /{version}/models/{model}:generateContent`
and `POST /{version}/models/{model}:streamGenerateContent?alt=sse` (without `alt=sse` the real
service streams one JSON array; so does the fake).

It checks what the real service checks for our requests, in its order: the API key, in the
`x-goog-api-key` header (none: 403 PERMISSION_DENIED; another: 400 API_KEY_INVALID, with the
real `ErrorInfo` detail); the model (404 NOT_FOUND); then the body: known field names only
("Unknown name ... Cannot find field"), `contents` with roles `user`/`model` and non-empty parts
holding exactly one of text, functionCall (model only) or functionResponse (user only), every
function-call turn answered by the next content with as many responses, by name and id;
`systemInstruction` text parts; `functionDeclarations` with valid unique names and `parameters`
in Gemini's OpenAPI subset (so `additionalProperties`, `$schema` or `default` are refused, as
Google does); `generationConfig`. For a `gemini-3*` model, the first function call of every
model turn since the last user text must carry a `thoughtSignature`, as Gemini 3 requires.
Errors have Google's shape: `{"error": {"code", "message", "status", "details"}}`.

Answers are planned per test, in order: `reply(text=..., calls=[...])` or `fail(...)` and its
shortcuts (`bad_key`, `rate_limited`, `server_error`). Streams are SSE `data:` lines, one
`GenerateContentResponse` each: the text in pieces, then the function calls (the first one
signed, as thinking models do), the `finishReason` and the `usageMetadata`. Every request is
recorded with its headers and body; requests refused as malformed are also listed in
`problems`, so that a test tells a bug in what we send from a failure it planned.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
BAD_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
NO_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
REQUEST_FIELDS = {
    "contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
    "safetySettings", "cachedContent", "labels",
}  # fmt: skip
CONTENT_FIELDS = {"role", "parts"}
PART_DATA = {
    "text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
    "codeExecutionResult",
}  # fmt: skip
PART_FIELDS = PART_DATA | {"thought", "thoughtSignature", "videoMetadata", "partMetadata"}
TOOL_FIELDS = {"functionDeclarations", "googleSearch", "codeExecution", "urlContext"}
DECLARATION_FIELDS = {
    "name", "description", "parameters", "parametersJsonSchema", "response", "behavior",
}  # fmt: skip
SCHEMA_FIELDS = {
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "items", "minimum", "maximum",
}  # fmt: skip
SCHEMA_TYPES = {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}
SCHEMA_FORMATS = {
    "STRING": {"enum", "date-time"},
    "NUMBER": {"float", "double"},
    "INTEGER": {"int32", "int64"},
}
GENERATION_FIELDS = {
    "maxOutputTokens", "temperature", "topP", "topK", "candidateCount", "stopSequences",
    "responseMimeType", "responseSchema", "thinkingConfig", "seed", "presencePenalty",
    "frequencyPenalty", "responseModalities",
}  # fmt: skip
_FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$")
STRUCT = "type.googleapis.com/google.protobuf.Struct"
SIGNATURE = base64.b64encode(b"fake-thought-signature").decode()


class Invalid(Exception):
    """A request the real API would refuse with 400 INVALID_ARGUMENT."""


@dataclass
class Planned:
    """One planned answer: a model turn (text and/or function calls), or an HTTP error."""

    text: str | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    call_ids: bool = False
    """Give each function call an `id`, as newer models do."""
    finish_reason: str = "STOP"
    block_reason: str | None = None
    """Block the prompt (`promptFeedback.blockReason`, no candidates)."""
    usage: tuple[int, int] | None = None
    """(promptTokenCount, candidatesTokenCount); estimated from the sizes when None."""
    pieces: int = 3
    """Text chunks in a stream."""
    delay: float = 0.0
    """Seconds to wait before answering."""
    status: int = 200
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def reply(
    text: str | None = None,
    calls: list[tuple[str, dict[str, Any]]] | None = None,
    **fields: Any,
) -> Planned:
    """A model turn: `text` and/or function `calls` as (name, args)."""
    return Planned(text=text, calls=list(calls or []), **fields)


def fail(
    status: int,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Planned:
    """An error answer in Google's shape."""
    error = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return Planned(status=status, error=error, headers=dict(headers or {}))


def bad_key_error() -> dict[str, Any]:
    """What Google answers (HTTP 400) to a key it does not know."""
    return {
        "code": 400,
        "message": BAD_KEY_MESSAGE,
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": BAD_KEY_MESSAGE,
            },
        ],
    }


def bad_key() -> Planned:
    """The upstream refuses the key (as if it had been revoked since the endpoint was made)."""
    return Planned(status=400, error=bad_key_error())


def rate_limited(retry_delay: str = "1s", retry_after: str | None = None) -> Planned:
    """429 RESOURCE_EXHAUSTED with Google's QuotaFailure, Help and RetryInfo details."""
    return fail(
        429,
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
        ],
        headers={"retry-after": retry_after} if retry_after else None,
    )


def server_error(status: int = 500) -> Planned:
    return fail(
        status,
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    )


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0
    at: float = field(default_factory=time.monotonic)

    @property
    def model(self) -> str:
        return self.path.split("/models/", 1)[-1].split(":", 1)[0]


class FakeGemini:
    """The fake Gemini API as an ASGI app (serve it with `tests.fakes.http.serve`)."""

    def __init__(self, api_key: str, models: tuple[str, ...] = ("gemini-x",)) -> None:
        self.api_key = api_key
        self.models = set(models)
        self.planned: deque[Planned] = deque()
        self.requests: list[Recorded] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._app = Starlette(
            routes=[Route("/{version}/models/{target:path}", self._handle, methods=["POST"])]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    def plan(self, *answers: Planned) -> FakeGemini:
        with self._lock:
            self.planned.extend(answers)
        return self

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        record = Recorded(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        with self._lock:
            self.requests.append(record)
        response = self._refusal(request, record)
        if response is None:
            with self._lock:
                planned = self.planned.popleft() if self.planned else None
            if planned is None:
                self.problems.append("a request came after the last planned answer")
                response = _error(400, "the fake Gemini has no planned answer left")
            else:
                await asyncio.sleep(planned.delay)
                response = _planned(planned, record)
        record.status = response.status_code
        return response

    def _refusal(self, request: Request, record: Recorded) -> Response | None:
        """The error the real API would answer before looking at the model's output, if any."""
        version = request.path_params["version"]
        model, _, method = request.path_params["target"].partition(":")
        if version not in ("v1", "v1beta") or method not in (
            "generateContent",
            "streamGenerateContent",
        ):
            return _error(404, f"Method not found: {version}/models/{model}:{method}")
        if "key" in record.query:
            self.problems.append("the API key travelled in the URL")
        key = record.headers.get("x-goog-api-key")
        if not key:
            return _error(403, NO_KEY_MESSAGE)
        if key != self.api_key:
            return JSONResponse({"error": bad_key_error()}, status_code=400)
        if model not in self.models:
            return _error(
                404,
                f"models/{model} is not found for API version {version}, or is not supported "
                "for generateContent. Call ListModels to see the list of available models and "
                "their supported methods.",
            )
        try:
            check_request(record.body, model)
        except Invalid as exc:
            self.problems.append(str(exc))
            return _error(400, str(exc))
        return None


def _planned(planned: Planned, record: Recorded) -> Response:
    if planned.error is not None:
        return JSONResponse(
            {"error": planned.error}, status_code=planned.status, headers=planned.headers
        )
    chunks = list(_chunks(planned, record.model, len(json.dumps(record.body))))
    if record.path.endswith(":generateContent"):
        return JSONResponse(_merged(chunks))
    if record.query.get("alt") == "sse":
        lines = (f"data: {json.dumps(chunk)}\r\n\r\n" for chunk in chunks)
        return StreamingResponse(lines, media_type="text/event-stream")
    return JSONResponse(chunks)


def _error(status: int, message: str) -> JSONResponse:
    error = {"code": status, "message": message, "status": STATUS_NAMES[status]}
    return JSONResponse({"error": error}, status_code=status)


# --- Answers -----------------------------------------------------------------------------------


def _chunks(planned: Planned, model: str, request_size: int) -> Iterator[dict[str, Any]]:
    """The `GenerateContentResponse` chunks of a stream, in order."""
    calls_size = len(json.dumps(planned.calls))
    prompt, output = planned.usage or (
        request_size // 4 + 1,
        (len(planned.text or "") + calls_size) // 4 + 1,
    )
    base = {"modelVersion": model, "responseId": "fake-response-1"}
    if planned.block_reason:
        usage = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        yield {"promptFeedback": {"blockReason": planned.block_reason}, "usageMetadata": usage}
        return
    pieces = _split(planned.text or "", planned.pieces)
    calls = [
        _call_part(i, name, args, planned.call_ids) for i, (name, args) in enumerate(planned.calls)
    ]
    last_parts = ([{"text": pieces.pop()}] if pieces else []) + calls
    for piece in pieces:
        yield {
            "candidates": [_candidate([{"text": piece}])],
            "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
            **base,
        }
    usage = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
    }
    last = _candidate(last_parts or [{"text": ""}], planned.finish_reason)
    yield {"candidates": [last], "usageMetadata": usage, **base}


def _call_part(index: int, name: str, args: dict[str, Any], with_id: bool) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name, "args": args}
    if with_id:
        call["id"] = f"fc-{index}-{name}"
    part: dict[str, Any] = {"functionCall": call}
    if index == 0:
        part["thoughtSignature"] = SIGNATURE
    return part


def _candidate(parts: list[dict[str, Any]], finish_reason: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish_reason:
        candidate["finishReason"] = finish_reason
    return candidate


def _split(text: str, pieces: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _merged(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The single answer of `generateContent`: the stream's chunks folded into one."""
    last = dict(chunks[-1])
    if "candidates" not in last:
        return last
    parts: list[dict[str, Any]] = []
    for chunk in chunks:
        for part in chunk["candidates"][0]["content"]["parts"]:
            if "text" in part and parts and "text" in parts[-1]:
                parts[-1] = {"text": parts[-1]["text"] + part["text"]}
            else:
                parts.append(part)
    last["candidates"] = [{**last["candidates"][0], "content": {"parts": parts, "role": "model"}}]
    return last


# --- Request validation ------------------------------------------------------------------------


def check_request(body: Any, model: str) -> None:
    """Refuse, as Google would, a `GenerateContentRequest` the real API would not take.

    Raises:
        Invalid: with Google's message for the first fault found.
    """
    if not isinstance(body, dict):
        raise Invalid("Invalid JSON payload received. Unexpected token.")
    body = normalized(body)
    _known(body, REQUEST_FIELDS, "")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        _check_content(content, f"contents[{i}]")
    _check_turns(contents, model)
    system = body.get("systemInstruction")
    if system is not None:
        _check_system(system)
    for i, tool in enumerate(body.get("tools") or []):
        _check_tool(tool, f"tools[{i}]")
    config = body.get("generationConfig")
    if config is not None:
        _known(config, GENERATION_FIELDS, "generation_config")
        tokens = config.get("maxOutputTokens")
        if tokens is not None and (not isinstance(tokens, int) or tokens < 1):
            raise Invalid(
                "* GenerateContentRequest.generation_config.max_output_tokens: must be positive"
            )


_OPAQUE = {"args", "response", "example", "default", "labels", "responseSchema"}
"""Fields whose value is the caller's data, not more of the request's structure."""


def normalized(obj: Any) -> Any:
    """The request with every field name in its JSON (lowerCamelCase) form.

    Google's proto JSON parser takes a field by its JSON name or its proto name
    (`maxOutputTokens` or `max_output_tokens`), and the SDK sends some of each (a function
    declaration's schema goes out with proto names, `min_length`). What the caller owns
    (function args, responses, property names) is left as it is.
    """
    if isinstance(obj, list):
        return [normalized(value) for value in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), key)
        if name in _OPAQUE:
            out[name] = value
        elif name == "properties" and isinstance(value, dict):
            out[name] = {prop: normalized(sub) for prop, sub in value.items()}
        else:
            out[name] = normalized(value)
    return out


def _known(obj: Any, names: set[str], where: str) -> None:
    if not isinstance(obj, dict):
        raise Invalid(f"Invalid JSON payload received. Expected an object at '{where}'.")
    for name in obj:
        if name not in names:
            at = f" at '{where}'" if where else ""
            raise Invalid(
                f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
            )


def _check_content(content: Any, where: str) -> None:
    _known(content, CONTENT_FIELDS, where)
    role = content.get("role", "user")
    if role not in ("user", "model"):
        raise Invalid(
            f"* GenerateContentRequest.{where}.role: Please use a valid role: user, model."
        )
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise Invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
    for j, part in enumerate(parts):
        _check_part(part, role, f"{where}.parts[{j}]")


def _check_part(part: Any, role: str, where: str) -> None:
    _known(part, PART_FIELDS, where)
    data = [name for name in PART_DATA if name in part and part[name] not in ("", None)]
    if len(data) != 1:
        raise Invalid(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one "
            "initialized field"
        )
    if "text" in part and not isinstance(part["text"], str):
        raise Invalid(f"Invalid value at '{where}.text' (TYPE_STRING)")
    signature = part.get("thoughtSignature")
    if signature is not None:
        try:
            base64.b64decode(signature, validate=True)
        except (binascii.Error, TypeError):
            raise Invalid(f"Invalid value at '{where}.thought_signature' (TYPE_BYTES)") from None
    call = part.get("functionCall")
    if call is not None:
        _known(call, {"id", "name", "args"}, f"{where}.function_call")
        if role != "model":
            raise Invalid(
                f"* GenerateContentRequest.{where}: a function call must be in a model turn"
            )
        if not isinstance(call.get("name"), str) or not call["name"]:
            raise Invalid(f"* GenerateContentRequest.{where}.function_call.name: name is required")
        if not isinstance(call.get("args", {}), dict):
            raise Invalid(f"Invalid value at '{where}.function_call.args' ({STRUCT})")
    response = part.get("functionResponse")
    if response is not None:
        fields = {"id", "name", "response", "willContinue", "scheduling"}
        _known(response, fields, f"{where}.function_response")
        if role != "user":
            raise Invalid(
                f"* GenerateContentRequest.{where}: a function response must be in a user turn"
            )
        if not isinstance(response.get("name"), str) or not response["name"]:
            raise Invalid(
                f"* GenerateContentRequest.{where}.function_response.name: name is required"
            )
        if not isinstance(response.get("response"), dict):
            raise Invalid(f"Invalid value at '{where}.function_response.response' ({STRUCT})")


def _check_turns(contents: list[dict[str, Any]], model: str) -> None:
    """Every function-call turn is answered by the next content, response for call."""
    user_texts = [
        i
        for i, c in enumerate(contents)
        if c.get("role", "user") == "user" and any("text" in p for p in c["parts"])
    ]
    turn_start = user_texts[-1] if user_texts else 0  # the model's current turn starts here
    for i, content in enumerate(contents):
        parts = content["parts"]
        calls = [p["functionCall"] for p in parts if "functionCall" in p]
        responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
        if responses:
            previous = contents[i - 1]["parts"] if i else []
            asked = [p["functionCall"] for p in previous if "functionCall" in p]
            if not asked:
                raise Invalid(
                    "Please ensure that function response turn comes immediately after a "
                    "function call turn."
                )
            if len(asked) != len(responses):
                raise Invalid(
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
            for call, response in zip(asked, responses, strict=True):
                if call["name"] != response["name"] or call.get("id") != response.get("id"):
                    raise Invalid(
                        f"* GenerateContentRequest.contents[{i}]: function response "
                        f"{response['name']!r} (id {response.get('id')!r}) does not answer "
                        f"function call {call['name']!r} (id {call.get('id')!r})"
                    )
        if calls and i + 1 < len(contents):
            nxt = contents[i + 1]["parts"]
            if not any("functionResponse" in p for p in nxt):
                raise Invalid(
                    "Please ensure that function call turn comes immediately after a user turn "
                    "or after a function response turn."
                )
        if calls and i > turn_start and model.startswith("gemini-3"):
            first = next(p for p in parts if "functionCall" in p)
            if "thoughtSignature" not in first:
                raise Invalid(
                    "Function call is missing a thought_signature in functionCall parts. This is "
                    "required for tools to work correctly, and missing thought_signature may "
                    "lead to degraded model performance. Additional data, function call "
                    f"`default_api:{first['functionCall']['name']}` , position {i + 1}. Please "
                    "refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more "
                    "details."
                )


def _check_system(system: Any) -> None:
    _known(system, CONTENT_FIELDS, "system_instruction")
    parts = system.get("parts")
    if not isinstance(parts, list) or not parts:
        raise Invalid("* GenerateContentRequest.system_instruction.parts: must not be empty.")
    for j, part in enumerate(parts):
        _known(part, {"text"}, f"system_instruction.parts[{j}]")
        if not isinstance(part.get("text"), str) or not part["text"]:
            raise Invalid(
                f"* GenerateContentRequest.system_instruction.parts[{j}].data: required oneof "
                "field 'data' must have one initialized field"
            )


def _check_tool(tool: Any, where: str) -> None:
    _known(tool, TOOL_FIELDS, where)
    seen: set[str] = set()
    for k, declaration in enumerate(tool.get("functionDeclarations") or []):
        at = f"{where}.function_declarations[{k}]"
        _known(declaration, DECLARATION_FIELDS, at)
        name = declaration.get("name")
        if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
            raise Invalid(
                f"* GenerateContentRequest.{at}.name: Invalid function name. Must start with a "
                "letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), "
                "dots (.), colons (:), or dashes (-), with a maximum length of 64."
            )
        if name in seen:
            raise Invalid(f"* GenerateContentRequest.{at}: Duplicate function declaration: {name}")
        seen.add(name)
        if "parameters" in declaration:
            _check_schema(declaration["parameters"], f"{at}.parameters")


def _check_schema(schema: Any, where: str) -> None:
    _known(schema, SCHEMA_FIELDS, where)
    kind = schema.get("type", "TYPE_UNSPECIFIED")
    if kind not in SCHEMA_TYPES:
        raise Invalid(
            f"Invalid value at '{where}.type' "
            f'(type.googleapis.com/google.ai.generativelanguage.v1beta.Type), "{kind}"'
        )
    fmt = schema.get("format")
    if fmt is not None and fmt not in SCHEMA_FORMATS.get(kind, set()):
        raise Invalid(
            f"* GenerateContentRequest.{where}.format: format {fmt!r} is not supported for "
            f"type {kind}"
        )
    enum = schema.get("enum")
    if enum is not None and (kind != "STRING" or not all(isinstance(v, str) for v in enum)):
        raise Invalid(f"* GenerateContentRequest.{where}.enum: only for STRING, of strings")
    properties = schema.get("properties")
    if kind == "OBJECT" and properties is not None and not properties:
        raise Invalid(
            f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type"
        )
    for name, sub in (properties or {}).items():
        _check_schema(sub, f"{where}.properties[{name}]")
    for n, name in enumerate(schema.get("required") or []):
        if name not in (properties or {}):
            raise Invalid(
                f"* GenerateContentRequest.{where}.required[{n}]: property is not defined"
            )
    if "items" in schema:
        _check_schema(schema["items"], f"{where}.items")
    for n, sub in enumerate(schema.get("anyOf") or []):
        _check_schema(sub, f"{where}.any_of[{n}]")
