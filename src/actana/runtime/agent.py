"""The `execution` phase: the agent loop.

Each round sends the whole conversation to the model gateway and reads back one turn (streamed
text deltas, then the turn). The tool calls of a turn run one after the other, each reported as a
`step` (running, then succeeded or failed with the same id), and their results go back to the
model as `tool` messages. A turn without tool calls ends the run with its text; so does a call of
the `finish` tool, with its message (the calls after it in that turn are not run).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any, cast

from actana.protocol.events import ERROR_CODES, DeltaEvent, ErrorCode, StepEvent, Usage
from actana.protocol.payloads import ConfigPayload, Message, ModelRequest, ModelTurn, ToolCall
from actana.runtime.channel import MODEL_PATH, Channel, ChannelError
from actana.runtime.decode import DecodeError, decode
from actana.runtime.emit import Deadline, Emitter, RunFailure, for_log
from actana.runtime.tools.base import Finish, ToolError
from actana.runtime.tools.registry import Toolbox

# The tool that ends the run with an answer (actana.runtime.tools.plan).
FINISH = "finish"


class AgentLoop:
    """One run's conversation with the model and its tool calls.

    Attributes:
        usage: tokens and model calls, summed over the turns so far.
        rounds: model turns so far.
    """

    def __init__(
        self,
        channel: Channel,
        config: ConfigPayload,
        toolbox: Toolbox,
        deadline: Deadline,
        emitter: Emitter,
    ) -> None:
        """Prepare the loop; nothing is sent until `run`."""
        self._channel = channel
        self._config = config
        self._toolbox = toolbox
        self._deadline = deadline
        self._emitter = emitter
        self._schemas = toolbox.schemas()
        self.usage = Usage()
        self.rounds = 0

    def run(self) -> str:
        """Talk to the model until it answers without asking for tools.

        Returns:
            The final answer's text.

        Raises:
            RunFailure: `max_rounds`, `timeout`, `model_error` (or a code the gateway gave).
        """
        max_rounds = self._config.agent.max_rounds
        messages = [Message(role="user", text=self._config.prompt)]
        while True:
            self._deadline.check("the next model call")
            turn = self._model_turn(messages)
            self.rounds += 1
            self.usage.input_tokens += turn.usage.input_tokens
            self.usage.output_tokens += turn.usage.output_tokens
            # Every turn took at least one model call, whether or not the gateway counted it.
            self.usage.model_calls += max(1, turn.usage.model_calls)
            messages.append(Message(role="assistant", text=turn.text, tool_calls=turn.tool_calls))
            if not turn.tool_calls:
                return turn.text or ""
            # The last round's tools are run only if the turn also finishes: otherwise nobody
            # would see their results.
            last_round = self.rounds >= max_rounds
            if last_round and not any(call.name == FINISH for call in turn.tool_calls):
                raise _max_rounds(self.rounds, max_rounds)
            for call in turn.tool_calls:
                message, answer = self._run_tool(call)
                messages.append(message)
                if answer is not None:
                    return answer
            if last_round:  # `finish` was asked for but did not end the run (e.g. bad arguments)
                raise _max_rounds(self.rounds, max_rounds)

    def _model_turn(self, messages: list[Message]) -> ModelTurn:
        """One POST to the model gateway: emit its deltas, return its turn."""
        request = ModelRequest(
            system=self._config.agent.system_prompt,
            messages=messages,
            tools=self._schemas,
            max_tokens=None,
        )
        stream = self._channel.stream_ndjson(
            MODEL_PATH,
            self._config.session_token,
            asdict(request),
            timeout=max(1.0, min(self._deadline.remaining(), 600.0)),
        )
        try:
            for item in stream:
                kind = item.get("type")
                if kind == "delta" and isinstance(item.get("text"), str):
                    self._emitter.emit(DeltaEvent(text=item["text"]))
                elif kind == "turn":
                    return decode(ModelTurn, item.get("turn"), "turn")
                elif kind == "error":
                    raise _gateway_failure(item)
                # Anything else is from a newer gateway; skipping it is the compatible choice.
                self._deadline.check("the model's answer was complete")
        except ChannelError as exc:
            if self._deadline.expired():
                raise RunFailure(
                    "timeout", f"the run's deadline passed during a model call: {exc}"
                ) from None
            raise RunFailure("model_error", f"the model gateway failed: {exc}") from None
        except DecodeError as exc:
            raise RunFailure(
                "model_error", f"the model gateway sent a malformed turn: {exc}"
            ) from None
        finally:
            stream.close()
        raise RunFailure("model_error", "the model gateway ended its answer without a turn")

    def _run_tool(self, call: ToolCall) -> tuple[Message, str | None]:
        """Run one tool call as a step.

        Returns:
            The `tool` message for the model, and the run's answer if the call was `finish`.
        """
        self._deadline.check(f"tool call {call.id} ({call.name})")
        self._emitter.emit(
            StepEvent(id=call.id, name=call.name, status="running", args=for_log(call.args))
        )
        started = time.monotonic()
        answer: str | None = None
        try:
            result = self._toolbox.invoke(call.name, call.args)
        except Finish as done:
            answer, result = done.message, {"finished": True}
        except ToolError as exc:
            error = str(exc)
            self._emitter.emit(
                StepEvent(
                    id=call.id,
                    name=call.name,
                    status="failed",
                    args=for_log(call.args),
                    result=for_log(exc.details),
                    error=error,
                    durationMs=_ms_since(started),
                )
            )
            text = error if exc.details is None else f"{error}\n{_json(exc.details)}"
            return Message(role="tool", text=text, tool_call_id=call.id, is_error=True), None
        self._emitter.emit(
            StepEvent(
                id=call.id,
                name=call.name,
                status="succeeded",
                args=for_log(call.args),
                result=for_log(result),
                durationMs=_ms_since(started),
            )
        )
        return Message(role="tool", text=_json(result), tool_call_id=call.id), answer


def _max_rounds(rounds: int, max_rounds: int) -> RunFailure:
    return RunFailure(
        "max_rounds",
        f"the model still asked for tools after {rounds} rounds (max_rounds is {max_rounds})",
    )


def _gateway_failure(item: dict[str, Any]) -> RunFailure:
    """The run failure for a gateway `error` line: its code if the protocol knows it."""
    code = item.get("code")
    message = item.get("message")
    text = message if isinstance(message, str) else "the model call failed"
    if isinstance(code, str) and code in ERROR_CODES:
        return RunFailure(cast(ErrorCode, code), text)
    return RunFailure("model_error", f"{code}: {text}" if isinstance(code, str) else text)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
