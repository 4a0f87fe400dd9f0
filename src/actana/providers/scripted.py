"""The offline `scripted` model: plays the endpoint's script, one turn per model call.

It makes runs reproducible in tests and in the demo. Usage is estimated (4 characters a token)
so budgets and result.json have numbers to work with.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import asdict

from actana.protocol.events import Usage
from actana.protocol.payloads import GatewayDelta, ModelTurn, ToolCall
from actana.providers.base import ModelCallError, ModelProvider, ProviderCall, model_provider


class ScriptedProvider(ModelProvider):
    name = "scripted"

    async def turn(
        self, call: ProviderCall, api_key: str | None
    ) -> AsyncIterator[GatewayDelta | ModelTurn]:
        script = call.endpoint.script or []
        if call.turn_index >= len(script):
            raise ModelCallError(
                f"the script has {len(script)} turn(s) and the agent asked for turn "
                f"{call.turn_index + 1}; end the script with a text turn"
            )
        step = script[call.turn_index]
        prompt_chars = len(call.request.system) + len(
            json.dumps([asdict(m) for m in call.request.messages])
        )
        text = step.get("text")
        tool_calls = [
            ToolCall(id=f"call_{call.turn_index}_{i}", name=c["name"], args=c.get("args", {}))
            for i, c in enumerate(step.get("tool_calls") or [])
        ]
        if text:
            # Stream the final text in a few pieces, as a real model would.
            for start in range(0, len(text), 16):
                yield GatewayDelta(text=text[start : start + 16])
        output_chars = len(text or "") + len(json.dumps([asdict(c) for c in tool_calls]))
        yield ModelTurn(
            text=text,
            tool_calls=tool_calls,
            stop_reason="tool_use" if tool_calls else "end_turn",
            usage=Usage(
                input_tokens=prompt_chars // 4 + 1,
                output_tokens=output_chars // 4 + 1,
                model_calls=1,
            ),
        )


@model_provider("scripted")
def _scripted() -> ModelProvider:
    return ScriptedProvider()
