"""The `anthropic` provider: the Messages API, with tool use and streaming, over the official SDK.

The neutral conversation maps onto Messages like this: the system prompt goes in `system`; a
`user` message is a user turn; an `assistant` message is a text block and one `tool_use` block
per call (ids kept); `tool` messages become `tool_result` blocks of a user turn, consecutive
ones merged into one turn as the API requires. The SDK is imported only when a call is made.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from actana.protocol.events import Usage
from actana.protocol.payloads import GatewayDelta, Message, ModelRequest, ModelTurn, ToolCall
from actana.providers.base import ModelCallError, ModelProvider, ProviderCall, model_provider

if TYPE_CHECKING:
    from anthropic import APIError

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 4096
"""Output cap of a turn when the request names none (every Messages call must name one)."""

STOP_REASONS = {
    "end_turn": "end_turn",
    "stop_sequence": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "refusal": "refusal",
    "pause_turn": "pause_turn",
}
"""Anthropic's stop reasons in the neutral vocabulary; one we do not know passes unchanged."""

# Error types that can arrive inside a 200 stream (an `error` event), with the HTTP status the
# same failure gets when it comes before the stream starts.
_STREAM_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
_CONTEXT_HINTS = ("prompt is too long", "context limit", "context window", "context length")
_KEY_LIKE = re.compile(r"sk-ant-[A-Za-z0-9_\-]+")
_MAX_DETAIL = 300


def to_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The neutral conversation as Messages API `messages` (roles alternate)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role, blocks = _blocks(message)
        if not blocks:
            continue  # an empty turn is refused by the API and says nothing anyway
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _blocks(message: Message) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id or "",
            "content": message.text or "",
            "is_error": message.is_error,
        }
        return "user", [block]
    blocks: list[dict[str, Any]] = []
    if message.text:
        blocks.append({"type": "text", "text": message.text})
    if message.role == "assistant":
        blocks.extend(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.args}
            for call in message.tool_calls
        )
    return message.role, blocks


def to_params(model: str, request: ModelRequest) -> dict[str, Any]:
    """Keyword arguments of `messages.create`/`messages.stream` for `request`."""
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": to_messages(request.messages),
    }
    if request.system:
        params["system"] = request.system
    if request.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
    return params


def to_turn(message: dict[str, Any]) -> ModelTurn:
    """The neutral turn of a Messages API response (its JSON form)."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            args = block.get("input")
            calls.append(
                ToolCall(
                    id=block["id"], name=block["name"], args=args if isinstance(args, dict) else {}
                )
            )
        # Thinking and server-tool blocks carry nothing the runtime acts on.
    reason = message.get("stop_reason") or "end_turn"
    usage = message.get("usage") or {}
    input_tokens = sum(
        usage.get(name) or 0
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return ModelTurn(
        text="".join(texts) or None,
        tool_calls=calls,
        stop_reason=STOP_REASONS.get(reason, reason),
        usage=Usage(
            input_tokens=input_tokens,
            output_tokens=usage.get("output_tokens") or 0,
            model_calls=1,
        ),
    )


class AnthropicProvider(ModelProvider):
    name = "anthropic"

    async def turn(
        self, call: ProviderCall, api_key: str | None
    ) -> AsyncIterator[GatewayDelta | ModelTurn]:
        if not api_key:
            raise ModelCallError("the model endpoint has no api_key; set one for anthropic")
        from anthropic import APIError, AsyncAnthropic

        base_url = call.endpoint.base_url or DEFAULT_BASE_URL
        params = to_params(call.endpoint.model, call.request)
        try:
            async with (
                AsyncAnthropic(
                    api_key=api_key,
                    base_url=base_url,
                    max_retries=0,  # the gateway retries, within the run's deadline
                    timeout=call.timeout_sec,
                ) as client,
                client.messages.stream(**params) as stream,
            ):
                async for event in stream:
                    if event.type == "text" and event.text:
                        yield GatewayDelta(text=event.text)
                final = await stream.get_final_message()
        except APIError as exc:
            raise to_error(exc, api_key, call) from None
        except ValueError:  # the SDK could not read an event, or a tool's input is not JSON
            raise ModelCallError(
                "the provider sent an answer that could not be read (a malformed event or tool "
                "input)",
                retryable=True,
            ) from None
        except Exception as exc:
            # The SDK wraps transport errors of the request, not those of reading the stream.
            if not _broken_connection(exc):
                raise
            raise ModelCallError(
                "the connection to the provider broke off during its answer", retryable=True
            ) from None
        yield to_turn(final.model_dump(mode="json"))


def to_error(exc: APIError, api_key: str, call: ProviderCall) -> ModelCallError:
    """A `ModelCallError` for an SDK failure, with a message that helps and holds no key."""
    from anthropic import APIConnectionError, APIStatusError, APITimeoutError

    if isinstance(exc, APITimeoutError):
        return ModelCallError(
            f"the provider did not answer within {call.timeout_sec:.0f} s", retryable=True
        )
    if isinstance(exc, APIConnectionError):
        where = urlsplit(call.endpoint.base_url or DEFAULT_BASE_URL).netloc
        return ModelCallError(
            f"could not reach the provider at {where}: the connection failed", retryable=True
        )
    if not isinstance(exc, APIStatusError):
        return ModelCallError("the provider sent an answer the SDK could not read")
    kind = exc.type or ""
    status = exc.status_code
    if status < 400:  # an `error` event inside a stream that had started well
        status = _STREAM_ERROR_STATUS.get(kind, 500)
    detail = _scrub(exc.api_message or kind or "no details", api_key)
    retry_after = _retry_after(exc.response.headers.get("retry-after"))
    return status_error(status, detail, call.endpoint.model, retry_after)


def status_error(
    status: int, detail: str, model: str, retry_after: float | None = None
) -> ModelCallError:
    """The `ModelCallError` for an HTTP error `status` of the Messages API."""
    said = f"(HTTP {status}: {detail})"
    if status in (401, 403):
        scope = " and what it may access" if status == 403 else ""
        return ModelCallError(
            f"the provider refused the API key {said}; check the model endpoint's api_key{scope}",
            status=status,
        )
    if status == 404:
        return ModelCallError(
            f"the provider does not know the model {model!r} {said}; check the model "
            "endpoint's model (and its base_url)",
            status=status,
        )
    if status == 413 or (status == 400 and _about_context(detail)):
        return ModelCallError(
            f"the conversation is too long for the model's context {said}", status=status
        )
    if status == 429:
        return ModelCallError(
            f"the provider rate limited the call {said}",
            retryable=True,
            retry_after=retry_after,
            status=status,
        )
    if status == 529:
        return ModelCallError(
            f"the provider is overloaded {said}",
            retryable=True,
            retry_after=retry_after,
            status=status,
        )
    if status >= 500 or status == 408:
        return ModelCallError(
            f"the provider failed {said}", retryable=True, retry_after=retry_after, status=status
        )
    return ModelCallError(f"the provider refused the request {said}", status=status)


def _broken_connection(exc: Exception) -> bool:
    """Whether `exc` is a transport error of the SDK's HTTP client (httpx, or httpx2 in 2.x)."""
    return any(
        cls.__name__ == "TransportError" and cls.__module__.split(".")[0] in ("httpx", "httpx2")
        for cls in type(exc).__mro__
    )


def _about_context(detail: str) -> bool:
    lowered = detail.lower()
    return any(hint in lowered for hint in _CONTEXT_HINTS)


def _scrub(text: str, api_key: str) -> str:
    """Upstream text with the key (or anything shaped like one) cut out, kept short."""
    text = text.replace(api_key, "[key]") if api_key else text
    text = _KEY_LIKE.sub("[key]", text)
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _retry_after(value: str | None) -> float | None:
    """Seconds of a `retry-after` header (seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@model_provider("anthropic")
def _anthropic() -> ModelProvider:
    return AnthropicProvider()
