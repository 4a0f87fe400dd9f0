"""OpenAI Chat Completions, for `openai` and for any `openai_compatible` server, over the official
SDK with streaming and tools.

The two providers differ only in details, each a deliberate choice:

- `openai` sends `max_completion_tokens` (the reasoning models refuse `max_tokens`) and talks to
  `https://api.openai.com/v1` unless the endpoint names another `base_url`.
- `openai_compatible` (Ollama, vLLM, llama.cpp server, LiteLLM proxy...) sends the older
  `max_tokens` that every such server knows. It asks for usage with `stream_options` too, and
  when a server refuses that field (a 400 that names it, as llama.cpp and older vLLM do) it asks
  once more without it. A server that sends no usage gets its usage estimated at 4 characters a
  token, so that the run's token budget keeps counting.
- Neither reads the server's environment: the base URL is always explicit, and `OPENAI_ORG_ID`
  or `OPENAI_PROJECT_ID` of the operator never travels to a third-party server.

Tool-call arguments that are not a JSON object are not a failed call: the tool call goes to the
runtime with the raw text under `INVALID_ARGUMENTS`, so that the tool refuses it and the model
reads why, and can try again. Errors become `ModelCallError`s whose messages never carry key
material: the upstream's text for a refused key (OpenAI echoes part of the key) is dropped, and
any other upstream text is scrubbed of the key and of masked key forms.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

from actana.protocol.events import Usage
from actana.protocol.payloads import (
    GatewayDelta,
    Message,
    ModelRequest,
    ModelTurn,
    ToolCall,
    ToolSchema,
)
from actana.providers.base import ModelCallError, ModelProvider, ProviderCall, model_provider
from actana.providers.redact import REDACTED, redact

if TYPE_CHECKING:
    from openai import APIStatusError, AsyncOpenAI
    from openai.types.chat import ChatCompletionChunk

Flavor = Literal["openai", "openai_compatible"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
INVALID_ARGUMENTS = "arguments_not_valid_json"
"""The only argument of a tool call whose arguments were not a JSON object: the raw text. The
tool refuses it as an unknown argument, which tells the model what went wrong."""
TOOL_ERROR_PREFIX = "ERROR: the tool call failed.\n"
"""Starts the content of a `tool` message whose call failed (Chat Completions has no error flag)."""

FINISH_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "content_filter",
}
_RETRYABLE_STATUSES = {408, 409, 429}
_MESSAGE_CAP = 300
_MASKED = re.compile(r"\S*\*{4,}\S*|\bsk-[A-Za-z0-9_-]{8,}")


# --- Request: provider-neutral -> Chat Completions --------------------------------------------


def to_openai_messages(request: ModelRequest) -> list[dict[str, Any]]:
    """The conversation as Chat Completions messages, the system prompt first."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.extend(_message(m) for m in request.messages)
    return messages


def _message(message: Message) -> dict[str, Any]:
    if message.role == "user":
        return {"role": "user", "content": message.text or ""}
    if message.role == "tool":
        text = message.text or ""
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": TOOL_ERROR_PREFIX + text if message.is_error else text,
        }
    out: dict[str, Any] = {"role": "assistant"}
    if message.tool_calls:
        out["content"] = message.text or None
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.args)},
            }
            for call in message.tool_calls
        ]
    else:
        out["content"] = message.text or ""
    return out


def to_openai_tools(tools: list[ToolSchema]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in tools
    ]


def request_params(
    flavor: Flavor, model: str, request: ModelRequest, *, stream_options: bool = True
) -> dict[str, Any]:
    """The keyword arguments of `chat.completions.create` for one streamed turn."""
    params: dict[str, Any] = {
        "model": model,
        "messages": to_openai_messages(request),
        "stream": True,
    }
    if stream_options:
        params["stream_options"] = {"include_usage": True}
    if request.tools:  # the API refuses an empty list
        params["tools"] = to_openai_tools(request.tools)
    if request.max_tokens is not None:
        name = "max_completion_tokens" if flavor == "openai" else "max_tokens"
        params[name] = request.max_tokens
    return params


# --- Answer: streamed chunks -> one ModelTurn ------------------------------------------------


def parse_arguments(raw: str) -> dict[str, Any]:
    """A tool call's arguments; anything but a JSON object is kept, raw, under
    `INVALID_ARGUMENTS` so that the model learns about it from the tool's refusal."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {INVALID_ARGUMENTS: raw}
    return value if isinstance(value, dict) else {INVALID_ARGUMENTS: raw}


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class TurnAssembler:
    """Builds one `ModelTurn` from a stream of chunks: text, tool calls joined by their index,
    the finish reason and the usage of the last chunk."""

    turn_index: int = 0
    text: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None
    started: bool = False

    def feed(self, chunk: ChatCompletionChunk) -> str:
        """Take one chunk in; return its text (maybe empty) to stream on."""
        self.started = True
        if chunk.usage is not None:
            self.usage = Usage(
                input_tokens=chunk.usage.prompt_tokens or 0,
                output_tokens=chunk.usage.completion_tokens or 0,
                model_calls=1,
            )
        new_text = ""
        for choice in chunk.choices or []:
            if choice.index not in (0, None):
                continue  # we ask for one choice; ignore any other
            delta = choice.delta
            if delta is not None:
                new_text = (delta.content or "") + (getattr(delta, "refusal", None) or "")
                for position, piece in enumerate(delta.tool_calls or []):
                    self._tool_call(position, piece)
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
        if new_text:
            self.text.append(new_text)
        return new_text

    def _tool_call(self, position: int, piece: Any) -> None:
        # Servers that leave out the index (some OpenAI-compatible ones) send whole calls.
        index = piece.index if isinstance(piece.index, int) else len(self.calls) + position
        call = self.calls.setdefault(index, _PartialCall())
        if piece.id and not call.id:
            call.id = piece.id
        function = piece.function
        if function is not None:
            if function.name and not call.name:
                call.name = function.name
            if function.arguments:
                call.arguments.append(function.arguments)

    def complete(self, *, strict: bool) -> bool:
        """Whether the answer ended properly: with a finish reason (`strict`, as OpenAI always
        sends one), or at least with something (lenient, for compatible servers)."""
        if self.finish_reason is not None:
            return True
        return not strict and bool(self.text or self.calls)

    def turn(self, prompt_chars: int) -> ModelTurn:
        """The assembled turn; `prompt_chars` estimates the input when no usage came."""
        tool_calls = [
            ToolCall(
                id=call.id or f"call_{self.turn_index}_{i}",
                name=call.name,
                args=parse_arguments("".join(call.arguments)),
            )
            for i, (_, call) in enumerate(sorted(self.calls.items()))
        ]
        text = "".join(self.text) or None
        reason = FINISH_REASONS.get(self.finish_reason or "stop", self.finish_reason or "end_turn")
        if tool_calls and reason == "end_turn":
            reason = "tool_use"  # some compatible servers say "stop" after tool calls
        usage = self.usage
        if usage is None:
            output_chars = len(text or "") + len(json.dumps([asdict(c) for c in tool_calls]))
            usage = Usage(prompt_chars // 4 + 1, output_chars // 4 + 1, model_calls=1)
        return ModelTurn(text=text, tool_calls=tool_calls, stop_reason=reason, usage=usage)


# --- Errors -----------------------------------------------------------------------------------


def scrub(text: str, api_key: str | None) -> str:
    """Upstream text made safe to show: no key, no masked key, not too long."""
    text = _MASKED.sub(REDACTED, redact(text, api_key))
    return text if len(text) <= _MESSAGE_CAP else text[: _MESSAGE_CAP - 3] + "..."


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            if name == "retry-after-ms":
                continue
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                return None
        return max(0.0, seconds) if seconds == seconds else None  # NaN is no hint
    return None


def map_error(
    exc: Exception, flavor: Flavor, model: str, base_url: str, api_key: str | None
) -> ModelCallError:
    """The `ModelCallError` for an exception of the openai SDK."""
    import openai

    where = _where(flavor, base_url)
    if isinstance(exc, openai.APITimeoutError):
        return ModelCallError(f"{where} did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ModelCallError(f"could not reach {where}: connection failed", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, where, model, api_key)
    if isinstance(exc, openai.APIError):  # an error event in the middle of the stream
        detail = scrub(exc.message, api_key)
        retryable = exc.type in (None, "server_error")
        return ModelCallError(f"{where} failed while answering: {detail}", retryable=retryable)
    return ModelCallError(f"the call to {where} failed: {type(exc).__name__}")


def _status_error(
    exc: APIStatusError, where: str, model: str, api_key: str | None
) -> ModelCallError:
    status: int = exc.status_code
    detail = _detail(exc.body, api_key)
    code = exc.code or ""
    if status == 401:
        # OpenAI's own text echoes part of the key: it is not passed on.
        return ModelCallError(
            f"{where} refused the endpoint's API key (401): check the key",
            status=status,
        )
    if status == 403:
        return ModelCallError(
            f"{where} does not allow this key to use model {model!r} (403){_colon(detail)}",
            status=status,
        )
    if status == 404:
        hint = "" if where == "OpenAI" else " (or the base_url is wrong: it usually ends in /v1)"
        return ModelCallError(
            f"{where} does not know model {model!r}{hint} (404){_colon(detail)}", status=status
        )
    if code == "context_length_exceeded" or "context length" in detail.lower():
        return ModelCallError(
            f"the conversation is too long for the model's context ({status}){_colon(detail)}",
            status=status,
        )
    if status == 429 and code == "insufficient_quota":
        return ModelCallError(
            f"{where}: the key's account has no quota left (429){_colon(detail)}", status=status
        )
    if status == 429:
        return ModelCallError(
            f"rate limited by {where} (429){_colon(detail)}",
            retryable=True,
            retry_after=retry_after(exc.response.headers),
            status=status,
        )
    if status >= 500 or status in _RETRYABLE_STATUSES:
        return ModelCallError(
            f"{where} failed ({status}){_colon(detail)}",
            retryable=True,
            retry_after=retry_after(exc.response.headers),
            status=status,
        )
    return ModelCallError(f"{where} refused the request ({status}){_colon(detail)}", status=status)


def _detail(body: object, api_key: str | None) -> str:
    """The upstream's own words from an error body, scrubbed ("" when it gave none)."""
    if isinstance(body, Mapping):
        body = body.get("message")
    if not isinstance(body, str):
        return ""
    return scrub(" ".join(body.split()), api_key)


def _colon(detail: str) -> str:
    return f": {detail}" if detail else ""


def _where(flavor: Flavor, base_url: str) -> str:
    return "OpenAI" if flavor == "openai" else f"the model server at {_origin(base_url)}"


def _origin(base_url: str) -> str:
    """scheme://host:port of a base URL, never its path, query or user info."""
    parts = urlsplit(base_url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


# --- The providers ----------------------------------------------------------------------------


class OpenAIChatProvider(ModelProvider):
    """One turn over Chat Completions, streamed, for `openai` or `openai_compatible`."""

    def __init__(self, flavor: Flavor) -> None:
        self.name = flavor
        self.flavor: Flavor = flavor

    async def turn(
        self, call: ProviderCall, api_key: str | None
    ) -> AsyncIterator[GatewayDelta | ModelTurn]:
        endpoint = call.endpoint
        base_url = endpoint.base_url or (OPENAI_BASE_URL if self.flavor == "openai" else None)
        if base_url is None:
            raise ModelCallError("an openai_compatible endpoint needs a base_url")
        if self.flavor == "openai" and not api_key:
            raise ModelCallError("the endpoint has no api_key; OpenAI needs one")
        import openai  # the SDK loads only when a call needs it

        deadline = time.monotonic() + call.timeout_sec
        prompt_chars = len(call.request.system) + len(
            json.dumps([asdict(m) for m in call.request.messages])
        )
        assembler = TurnAssembler(turn_index=call.turn_index)
        client = _client(base_url, api_key, call.timeout_sec)
        try:
            stream = await self._open(client, call)
            try:
                async for chunk in stream:
                    text = assembler.feed(chunk)
                    if text:
                        yield GatewayDelta(text=text)
                    if time.monotonic() > deadline:
                        raise ModelCallError(
                            f"the model's answer took longer than the {call.timeout_sec:.0f} s "
                            "left to the run"
                        )
            finally:
                await stream.close()
        except openai.APIConnectionError as exc:
            if not assembler.started or isinstance(exc, openai.APITimeoutError):
                raise map_error(exc, self.flavor, endpoint.model, base_url, api_key) from None
            raise ModelCallError(
                f"the connection to {_where(self.flavor, base_url)} broke off during the answer",
                retryable=True,
            ) from None
        except openai.OpenAIError as exc:
            raise map_error(exc, self.flavor, endpoint.model, base_url, api_key) from None
        finally:
            await client.close()
        if not assembler.complete(strict=self.flavor == "openai"):
            raise ModelCallError(
                f"{_where(self.flavor, base_url)} ended its answer before it was complete",
                retryable=True,
            )
        yield assembler.turn(prompt_chars)

    async def _open(self, client: AsyncOpenAI, call: ProviderCall) -> Any:
        """Start the stream; a compatible server that refuses `stream_options` is asked again
        without it."""
        import openai

        model, request = call.endpoint.model, call.request
        try:
            return await client.chat.completions.create(
                **request_params(self.flavor, model, request)
            )
        except openai.BadRequestError as exc:
            if self.flavor == "openai" or "stream_options" not in str(exc.message):
                raise
        return await client.chat.completions.create(
            **request_params(self.flavor, model, request, stream_options=False)
        )


def _client(base_url: str, api_key: str | None, timeout: float) -> AsyncOpenAI:
    from openai import AsyncOpenAI, Omit

    # Omit keeps the operator's OPENAI_ORG_ID / OPENAI_PROJECT_ID out of every request.
    unset = cast(str, Omit())
    return AsyncOpenAI(
        # Keyless local servers (Ollama, llama.cpp) take any key; the SDK wants one.
        api_key=api_key or "no-key",
        base_url=base_url,
        max_retries=0,  # the gateway retries, within the run's deadline
        timeout=timeout,
        default_headers={"OpenAI-Organization": unset, "OpenAI-Project": unset},
    )


@model_provider("openai")
def _openai() -> ModelProvider:
    return OpenAIChatProvider("openai")


@model_provider("openai_compatible")
def _openai_compatible() -> ModelProvider:
    return OpenAIChatProvider("openai_compatible")
