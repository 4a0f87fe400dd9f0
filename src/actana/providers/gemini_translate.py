"""The `gemini` provider's translation, without the network: the neutral request as Gemini's API
JSON (`contents`, and the SDK's `GenerateContentConfig` fields) and the streamed
`GenerateContentResponse` chunks, read back as API JSON, folded into one neutral `ModelTurn`.

See `gemini_genai` for the conventions (roles, tool-call ids, thought signatures).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from actana.protocol.events import Usage
from actana.protocol.payloads import Message, ModelRequest, ModelTurn, ToolCall
from actana.providers.base import ModelCallError
from actana.providers.gemini_schema import gemini_schema

SKIP_SIGNATURE = b"skip_thought_signature_validator"
MAX_SIGNATURE_CHARS = 64 * 1024
"""Google's documented stand-in for a thought signature the client could not keep."""

_OWN_ID = re.compile(r"^call_\d+_\d+$")

# --- Tools -------------------------------------------------------------------------------------


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


def _signature_bytes(signature: str | None) -> bytes | None:
    """A kept thought signature as the SDK takes it; None when absent or not base64 (it came
    back through the sandbox: a mangled one is replaced by the stand-in, not sent)."""
    if not signature or len(signature) > MAX_SIGNATURE_CHARS:
        return None
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None


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
                signature = _signature_bytes(call.signature)
                if signature is not None:
                    part["thoughtSignature"] = signature  # the model's own, sent back as it came
                elif i == 0:
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
                signature = part.get("thoughtSignature")
                self.tool_calls.append(
                    ToolCall(
                        id=str(call.get("id") or f"call_{self.turn_index}_{index}"),
                        name=str(call.get("name") or ""),
                        args=args if isinstance(args, dict) else {},
                        signature=signature if isinstance(signature, str) else None,
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
