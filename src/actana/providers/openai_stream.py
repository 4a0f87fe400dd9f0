"""The streamed Chat Completions answer folded into one neutral `ModelTurn`: text as it comes,
tool calls assembled from their pieces by index (ids kept, several per turn), the finish reason
in the shared stop-reason vocabulary, and the usage of the last chunk, or an estimate when a
compatible server sends none.

Tool-call arguments that are not a JSON object are not a failed call: the tool call goes to the
runtime with the raw text under `INVALID_ARGUMENTS`, so that the tool refuses it and the model
reads why, and can try again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from actana.protocol.events import Usage
from actana.protocol.payloads import ModelTurn, ToolCall

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionChunk

INVALID_ARGUMENTS = "arguments_not_valid_json"
"""The only argument of a tool call whose arguments were not a JSON object: the raw text. The
tool refuses it as an unknown argument, which tells the model what went wrong."""

FINISH_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "content_filter",
}


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
