"""The `gemini` provider: Google's Gemini API (generativelanguage `v1beta`) over the official
`google-genai` SDK, with function calling and streaming.

The translation builds the API's own JSON (camelCase `contents`, chunks read back the same way)
and the SDK's `GenerateContentConfig` fields, so that it can be read against Google's reference
and tested without the network; the SDK validates and sends it.

- The system prompt becomes `systemInstruction`; a `user` message a `user` content with one text
  part; an `assistant` message a `model` content with its text part and one `functionCall` part
  per tool call; the `tool` messages that follow it one `user` content of `functionResponse`
  parts, in call order (Gemini pairs calls and responses by name and order), holding
  `{"output": <result>}` or, for a failed call, `{"error": <message>}` as Google's docs ask.
- Tool-call ids: models that give their calls an `id` keep it, and it is sent back on the call
  and its response. Calls without one get `call_<turn>_<i>`, stable for the whole run, and that
  id is never sent upstream (older API versions know no such field).
- Thought signatures: thinking models sign their function calls and Gemini 3 refuses a replayed
  call without its signature. The neutral protocol does not carry signatures yet, so the first
  call of each replayed model turn gets Google's documented placeholder
  (`skip_thought_signature_validator`) and the real signatures are dropped.
- Tool schemas become `functionDeclarations[].parameters`, an OpenAPI subset: keywords Gemini
  refuses with "Unknown name" (`additionalProperties`, `$schema`, `$ref`, `default`, `examples`,
  `const`, `oneOf`, ...) are stripped or rewritten (see `gemini_schema`).
- The SDK's own retries are off (one attempt): the gateway alone retries, within the deadline.
"""

from __future__ import annotations

import importlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import anyio
import pydantic

from actana.protocol.events import Usage
from actana.protocol.payloads import GatewayDelta, Message, ModelRequest, ModelTurn, ToolCall
from actana.providers.base import ModelCallError, ModelProvider, ProviderCall, model_provider

if TYPE_CHECKING:
    from google.genai import types

API_VERSION = "v1beta"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"
SKIP_SIGNATURE = b"skip_thought_signature_validator"
"""Google's documented stand-in for a thought signature the client could not keep."""

_OWN_ID = re.compile(r"^call_\d+_\d+$")
_T = TypeVar("_T")

# --- Tool schemas ------------------------------------------------------------------------------

_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}
_FORMATS = {
    "STRING": {"enum", "date-time"},
    "NUMBER": {"float", "double"},
    "INTEGER": {"int32", "int64"},
}
_TEXT_KEYS = ("title", "description", "pattern")
_COUNT_KEYS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema as the `Schema` of Gemini's function declarations (an OpenAPI subset).

    Kept: type (upper case), title, description, pattern, nullable, string enums, properties,
    required (only names that are properties), items, anyOf, minimum/maximum, the min/max
    counts, and the formats Gemini knows for the type. Rewritten: a type list with "null" becomes
    the type plus `nullable`, a string `const` a one-value enum, `oneOf` an `anyOf`. Dropped,
    because Gemini answers 400 "Unknown name" or refuses the value: `additionalProperties`,
    `$schema`, `$id`, `$ref`, `$defs`, `default`, `examples`, `allOf`, `not`, `exclusiveMinimum`,
    `exclusiveMaximum`, `multipleOf`, `uniqueItems`, non-string enums, other formats and an empty
    `properties` object.
    """
    out = _schema_type(schema)
    for key in _TEXT_KEYS:
        if isinstance(schema.get(key), str):
            out[key] = schema[key]
    for key in _COUNT_KEYS:
        if _is_int(schema.get(key)):
            out[key] = schema[key]
    for key in ("minimum", "maximum"):
        if _is_int(schema.get(key)) or isinstance(schema.get(key), float):
            out[key] = schema[key]
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt
    enum = [schema["const"]] if isinstance(schema.get("const"), str) else schema.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        out["enum"] = list(enum)
    out.update(_schema_children(schema))
    return out


def _schema_type(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        if "null" in kind:
            out["nullable"] = True
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if isinstance(kind, str) and kind.upper() in _TYPES:
        out["type"] = kind.upper()
    if schema.get("nullable") is True:
        out["nullable"] = True
    return out


def _schema_children(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    properties = schema.get("properties")
    if isinstance(properties, dict) and properties:
        out["properties"] = {
            str(name): gemini_schema(sub if isinstance(sub, dict) else {})
            for name, sub in properties.items()
        }
        required = schema.get("required")
        if isinstance(required, list):
            kept = [name for name in required if name in out["properties"]]
            if kept:
                out["required"] = kept
    if isinstance(schema.get("items"), dict):
        out["items"] = gemini_schema(schema["items"])
    variants = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(variants, list) and variants:
        out["anyOf"] = [gemini_schema(v) for v in variants if isinstance(v, dict)]
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def function_declarations(request: ModelRequest) -> list[dict[str, Any]]:
    """The request's tools as Gemini `functionDeclarations` (no `parameters` for a tool that
    takes none: Gemini refuses an OBJECT without properties)."""
    declarations = []
    for tool in request.tools:
        declaration: dict[str, Any] = {"name": tool.name, "description": tool.description}
        parameters = gemini_schema(tool.parameters)
        if parameters.get("properties"):
            declaration["parameters"] = parameters
        declarations.append(declaration)
    return declarations


# --- Requests ----------------------------------------------------------------------------------


def to_contents(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation as Gemini `contents` (see the module docstring).

    Raises:
        ModelCallError: a tool result answers a call that no earlier model turn made.
    """
    contents: list[dict[str, Any]] = []
    calls: dict[str, ToolCall] = {}
    previous = ""
    for message in messages:
        if message.role == "user":
            contents.append({"role": "user", "parts": [{"text": message.text or ""}]})
        elif message.role == "assistant":
            parts: list[dict[str, Any]] = [{"text": message.text}] if message.text else []
            for i, call in enumerate(message.tool_calls):
                calls[call.id] = call
                function_call: dict[str, Any] = {"name": call.name, "args": call.args}
                if not _OWN_ID.match(call.id):
                    function_call["id"] = call.id
                part: dict[str, Any] = {"functionCall": function_call}
                if i == 0:
                    part["thoughtSignature"] = SKIP_SIGNATURE
                parts.append(part)
            if parts:  # an empty turn is only ever the last one, which is not sent back
                contents.append({"role": "model", "parts": parts})
        else:
            answered = calls.get(message.tool_call_id or "")
            if answered is None:
                raise ModelCallError(
                    f"a tool result answers call {message.tool_call_id!r}, which no earlier "
                    "model turn made"
                )
            response: dict[str, Any] = {
                "name": answered.name,
                "response": _tool_response(message),
            }
            if not _OWN_ID.match(answered.id):
                response["id"] = answered.id
            if previous == "tool":
                contents[-1]["parts"].append({"functionResponse": response})
            else:
                contents.append({"role": "user", "parts": [{"functionResponse": response}]})
        previous = message.role
    return contents


def _tool_response(message: Message) -> dict[str, Any]:
    text = message.text or ""
    if message.is_error:
        return {"error": text or "the tool failed"}
    try:
        return {"output": json.loads(text)}
    except ValueError:
        return {"output": text}


def to_config(request: ModelRequest) -> dict[str, Any]:
    """The `GenerateContentConfig` of the SDK (snake_case) for `request`."""
    config: dict[str, Any] = {"automatic_function_calling": {"disable": True}}
    if request.system:
        config["system_instruction"] = request.system
    declarations = function_declarations(request)
    if declarations:
        config["tools"] = [{"function_declarations": declarations}]
    if request.max_tokens is not None:
        config["max_output_tokens"] = request.max_tokens
    return config


# --- Responses ---------------------------------------------------------------------------------

_REFUSALS = {
    "SAFETY",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "RECITATION",
    "MODEL_ARMOR",
}
_FINISHED = {"STOP", "FINISH_REASON_UNSPECIFIED", "MAX_TOKENS"}


class TurnBuilder:
    """Folds the chunks of one streamed `GenerateContentResponse` into a `ModelTurn`."""

    def __init__(self, turn_index: int) -> None:
        self.turn_index = turn_index
        self.text = ""
        self.tool_calls: list[ToolCall] = []
        self.finish_reason: str | None = None
        self.block_reason: str | None = None
        self.usage: dict[str, Any] = {}

    def add(self, chunk: dict[str, Any]) -> str:
        """Take one chunk (API JSON); return the text it adds (thoughts are not text)."""
        feedback = chunk.get("promptFeedback") or {}
        if feedback.get("blockReason"):
            self.block_reason = str(feedback["blockReason"])
        if isinstance(chunk.get("usageMetadata"), dict):
            self.usage = chunk["usageMetadata"]  # cumulative: the last one counts
        candidates = chunk.get("candidates") or []
        if not candidates:
            return ""
        candidate = candidates[0]
        if candidate.get("finishReason"):
            self.finish_reason = str(candidate["finishReason"])
        added = ""
        for part in (candidate.get("content") or {}).get("parts") or []:
            if part.get("thought"):
                continue
            if isinstance(part.get("text"), str):
                added += part["text"]
            call = part.get("functionCall")
            if isinstance(call, dict):
                index = len(self.tool_calls)
                args = call.get("args")
                self.tool_calls.append(
                    ToolCall(
                        id=str(call.get("id") or f"call_{self.turn_index}_{index}"),
                        name=str(call.get("name") or ""),
                        args=args if isinstance(args, dict) else {},
                    )
                )
        self.text += added
        return added

    def finish(self) -> ModelTurn:
        """The turn, once the stream has ended.

        Raises:
            ModelCallError: Gemini blocked the prompt, stopped without an answer, or the stream
                ended before its last chunk.
        """
        reason = self.finish_reason
        if self.block_reason and not self.text and not self.tool_calls:
            raise ModelCallError(
                f"Gemini blocked the prompt (blockReason {self.block_reason}); "
                "rephrase the task or the system prompt"
            )
        if reason is None:
            raise ModelCallError(
                "the Gemini stream ended before its last chunk (no finishReason)", retryable=True
            )
        if not self.text and not self.tool_calls and reason not in _FINISHED:
            raise ModelCallError(
                f"Gemini stopped with finishReason {reason} and returned nothing",
                retryable=reason == "MALFORMED_FUNCTION_CALL",
            )
        if self.tool_calls:
            stop = "tool_use"
        elif reason == "MAX_TOKENS":
            stop = "max_tokens"
        elif reason in _REFUSALS:
            stop = "refusal"
        elif reason in _FINISHED:
            stop = "end_turn"
        else:
            stop = reason.lower()
        return ModelTurn(
            text=self.text or None,
            tool_calls=self.tool_calls,
            stop_reason=stop,
            usage=Usage(
                input_tokens=_count(self.usage, "promptTokenCount")
                + _count(self.usage, "toolUsePromptTokenCount"),
                output_tokens=_count(self.usage, "candidatesTokenCount")
                + _count(self.usage, "thoughtsTokenCount"),
                model_calls=1,
            ),
        )


def _count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --- Errors ------------------------------------------------------------------------------------

_TOO_LONG = re.compile(
    r"token count|exceeds the maximum number of tokens|input context is too long|too many tokens",
    re.IGNORECASE,
)
_BAD_KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"}


def api_error(
    code: int,
    body: Any,
    headers: Any = None,
    *,
    model: str = "",
    api_key: str | None = None,
) -> ModelCallError:
    """The `ModelCallError` for an error answer of the Gemini API (`body` is its JSON)."""
    error = body.get("error", body) if isinstance(body, dict) else {}
    error = error if isinstance(error, dict) else {}
    status = str(error.get("status") or "")
    upstream = _scrub(str(error.get("message") or "").strip(), api_key)[:500]
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    reasons = {str(d.get("reason")) for d in details if d.get("reason")}
    said = f"HTTP {code}{' ' + status if status else ''}{': ' + upstream if upstream else ''}"
    if reasons & _BAD_KEY_REASONS or code == 401:
        return ModelCallError(
            f"Gemini refused the endpoint's API key; check the model endpoint's api_key ({said})",
            status=code,
        )
    if code == 403:
        return ModelCallError(
            "Gemini denied the call; check that the endpoint's API key may use the Gemini API "
            f"and this model ({said})",
            status=code,
        )
    if code == 404:
        return ModelCallError(
            f"Gemini does not know the model {model!r}; check the endpoint's model ({said})",
            status=code,
        )
    if code == 400 and _TOO_LONG.search(upstream):
        return ModelCallError(
            f"the conversation is too long for the model's context ({said})", status=code
        )
    if code == 429:
        return ModelCallError(
            f"Gemini rate-limited the call ({said})",
            retryable=True,
            retry_after=_retry_after(headers, details),
            status=code,
        )
    if code == 408 or code >= 500:
        return ModelCallError(
            f"Gemini failed ({said})",
            retryable=True,
            retry_after=_retry_after(headers, details),
            status=code,
        )
    return ModelCallError(f"Gemini refused the request ({said})", status=code)


def _retry_after(headers: Any, details: list[dict[str, Any]]) -> float | None:
    """Seconds to wait, from a `Retry-After` header or the `RetryInfo` detail ("33s")."""
    value = headers.get("retry-after") if headers is not None else None
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    for detail in details:
        delay = detail.get("retryDelay")
        if str(detail.get("@type", "")).endswith("RetryInfo") and isinstance(delay, str):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)s", delay.strip())
            if match:
                return float(match.group(1))
    return None


def _scrub(text: str, api_key: str | None) -> str:
    # The gateway redacts key material again; this keeps it out of our own messages too.
    return text.replace(api_key, "[redacted]") if api_key else text


def _transport_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(timeouts, other transport failures) of httpx and of httpx2, its fork, which the SDK
    uses instead when it is installed."""
    timeouts: list[type[Exception]] = []
    transports: list[type[Exception]] = []
    for name in ("httpx", "httpx2"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        transports.append(module.TransportError)
    return tuple(timeouts), tuple(transports)


def call_error(exc: Exception, call: ProviderCall, api_key: str | None) -> ModelCallError:
    """The `ModelCallError` for whatever the SDK or the transport raised."""
    from google.genai import errors

    where = urlsplit(call.endpoint.base_url or DEFAULT_BASE_URL).netloc
    timeouts, transports = _transport_errors()
    if isinstance(exc, ModelCallError):
        return exc
    if isinstance(exc, errors.APIError):
        headers = getattr(exc.response, "headers", None)
        body = exc.details if isinstance(exc.details, dict) else {"message": exc.message}
        if "error" not in body:  # a body that was not JSON: the SDK keeps message and status
            body = {"error": body}
        return api_error(exc.code, body, headers, model=call.endpoint.model, api_key=api_key)
    if isinstance(exc, TimeoutError):  # the run's own time budget, see `_bounded`
        return ModelCallError(
            f"Gemini did not finish within the {call.timeout_sec:g} s left to the run"
        )
    if isinstance(exc, timeouts):
        return ModelCallError(f"Gemini at {where} did not answer in time", retryable=True)
    if isinstance(exc, transports):
        return ModelCallError(
            f"could not talk to Gemini at {where} ({type(exc).__name__})", retryable=True
        )
    if isinstance(exc, (errors.UnknownApiResponseError, pydantic.ValidationError)):
        return ModelCallError(
            f"the answer from {where} is not a Gemini API response; check the endpoint's base_url"
        )
    return ModelCallError(
        f"the call to Gemini failed ({type(exc).__name__}: {_scrub(str(exc), api_key)[:300]})"
    )


# --- The provider ------------------------------------------------------------------------------


async def _bounded(deadline: float, awaitable: Awaitable[_T]) -> _T:
    """Await within what is left of the turn's time budget (TimeoutError past it)."""
    with anyio.fail_after(max(0.0, deadline - time.monotonic())):
        return await awaitable


class GeminiProvider(ModelProvider):
    name = "gemini"

    async def turn(
        self, call: ProviderCall, api_key: str | None
    ) -> AsyncIterator[GatewayDelta | ModelTurn]:
        if not api_key:
            raise ModelCallError("the Gemini endpoint has no API key; set its api_key")
        try:
            from google import genai
            from google.genai import types
        except ImportError:
            raise ModelCallError(
                "the gemini provider needs the google-genai package (pip install google-genai)"
            ) from None
        try:
            contents = [types.Content.model_validate(c) for c in to_contents(call.request.messages)]
            config = types.GenerateContentConfig.model_validate(to_config(call.request))
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ModelCallError(
                f"the conversation does not fit Gemini's request format ({where}: {first['msg']})"
            ) from None
        builder = TurnBuilder(call.turn_index)
        deadline = time.monotonic() + call.timeout_sec
        client: genai.Client | None = None
        try:
            client = genai.Client(api_key=api_key, vertexai=False, http_options=_options(call))
            stream = await _bounded(
                deadline,
                client.aio.models.generate_content_stream(
                    model=call.endpoint.model, contents=contents, config=config
                ),
            )
            while (chunk := await _next(deadline, stream)) is not None:
                text = builder.add(chunk)
                if text:
                    yield GatewayDelta(text=text)
        except Exception as exc:
            raise call_error(exc, call, api_key) from None
        finally:
            if client is not None:
                with anyio.CancelScope(shield=True):  # also when the gateway gave up waiting
                    await client.aio.aclose()
                client.close()
        yield builder.finish()


async def _next(
    deadline: float, stream: AsyncIterator[types.GenerateContentResponse]
) -> dict[str, Any] | None:
    """The next chunk as API JSON, or None at the end of the stream."""
    try:
        chunk = await _bounded(deadline, stream.__anext__())
    except StopAsyncIteration:
        return None
    return chunk.model_dump(mode="json", by_alias=True, exclude_none=True)


def _options(call: ProviderCall) -> types.HttpOptions:
    from google.genai import types

    return types.HttpOptions(
        # Always explicit: the SDK would otherwise read GOOGLE_GEMINI_BASE_URL from the
        # server's environment, and the key must go only where the endpoint says.
        base_url=call.endpoint.base_url or DEFAULT_BASE_URL,
        api_version=API_VERSION,
        timeout=max(1000, int(call.timeout_sec * 1000)),
        retry_options=types.HttpRetryOptions(attempts=1),  # the gateway retries, not the SDK
    )


@model_provider("gemini")
def _gemini() -> ModelProvider:
    return GeminiProvider()
