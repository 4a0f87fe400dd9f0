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

This module is the providers themselves: the SDK client, the streamed call and its deadline, and
the errors. Errors become `ModelCallError`s whose messages never carry key material: the
upstream's text for a refused key (OpenAI echoes part of the key) is dropped, and any other
upstream text is scrubbed of the key and of masked key forms. The request is built in
`openai_translate`, the streamed answer assembled into a turn in `openai_stream` (where tool-call
arguments that are not a JSON object go to the tool under `INVALID_ARGUMENTS`, to be refused).
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from actana.protocol.payloads import GatewayDelta, ModelTurn
from actana.providers.base import ModelCallError, ModelProvider, ProviderCall, model_provider
from actana.providers.openai_stream import INVALID_ARGUMENTS as INVALID_ARGUMENTS  # re-exported
from actana.providers.openai_stream import TurnAssembler
from actana.providers.openai_translate import TOOL_ERROR_PREFIX as TOOL_ERROR_PREFIX  # re-exported
from actana.providers.openai_translate import Flavor, request_params
from actana.providers.redact import REDACTED, redact

if TYPE_CHECKING:
    from openai import APIStatusError, AsyncOpenAI

OPENAI_BASE_URL = "https://api.openai.com/v1"
_RETRYABLE_STATUSES = {408, 409, 429}
_MESSAGE_CAP = 300
_MASKED = re.compile(r"\S*\*{4,}\S*|\bsk-[A-Za-z0-9_-]{8,}")


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
