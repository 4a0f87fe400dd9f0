"""The `gemini` provider: Google's Gemini API (generativelanguage `v1beta`) over the official
`google-genai` SDK, with function calling and streaming.

This module is the provider itself: the SDK client and its calls, the turn's time budget, and
errors mapped to `ModelCallError`s that help and hold no key. The translation lives in
`gemini_translate`, which builds the API's own JSON (camelCase `contents`, chunks read back the
same way) and the SDK's `GenerateContentConfig` fields, so that it can be read against Google's
reference and tested without the network; the SDK validates and sends it. The tools' JSON schemas
are cut down to Gemini's subset in `gemini_schema`.

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
  `const`, `oneOf`, ...) are stripped or rewritten (see `gemini_schema.gemini_schema`).
- The SDK's own retries are off (one attempt): the gateway alone retries, within the deadline.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import anyio
import pydantic

from actana.protocol.payloads import GatewayDelta, ModelTurn
from actana.providers.base import ModelCallError, ModelProvider, ProviderCall, model_provider
from actana.providers.gemini_translate import TurnBuilder, to_config, to_contents

if TYPE_CHECKING:
    from google.genai import types

API_VERSION = "v1beta"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"
_T = TypeVar("_T")


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
