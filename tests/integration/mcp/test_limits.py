"""The bridge's limits: oversized results are cut with a marker, and a silent upstream is a
timeout within the call's bound, not a hang."""

from __future__ import annotations

import asyncio
import json
import socket
import time

from mcp.types import CallToolResult, TextContent

from actana.mcp.bridge import BridgeTarget, McpBridge
from actana.mcp.results import call_result
from actana.mcp.upstream import McpUpstreamError


def _json_size(value: object) -> int:
    # As the answer is sent: UTF-8, not \u-escaped (FastAPI's JSONResponse).
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def test_a_result_over_the_cap_is_cut_with_a_marker():
    big = "é" * 400_000  # 800 kB of UTF-8 per block
    result = CallToolResult(
        content=[TextContent(type="text", text="small"), TextContent(type="text", text=big)],
        structuredContent={"echo": big},
        isError=False,
    )

    cut = call_result(result, cap=100_000)

    assert cut.structured is None
    assert cut.content[0] == {"type": "text", "text": "small"}
    assert cut.content[1]["text"]
    assert big.startswith(cut.content[1]["text"])
    assert cut.content[-1]["text"].startswith("[actana: MCP result truncated:")
    assert _json_size(cut.content[:-1]) <= 100_000


def test_a_result_under_the_cap_is_passed_on_whole():
    result = CallToolResult(
        content=[TextContent(type="text", text="ok")], structuredContent={"a": 1}, isError=True
    )

    whole = call_result(result)

    assert whole.content == [{"type": "text", "text": "ok"}]
    assert whole.structured == {"a": 1}
    assert whole.is_error is True


def test_a_silent_upstream_is_a_timeout_within_the_bound():
    # A listener that accepts connections and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/mcp"

        async def scenario() -> tuple[McpUpstreamError, float]:
            async def no_headers() -> dict[str, str]:
                return {}

            bridge = McpBridge()
            target = BridgeTarget(
                "run_t", "mcp_t", "silent", url, "v1", time.monotonic() + 60, no_headers
            )
            started = time.monotonic()
            try:
                await bridge.call_tool(target, "anything", {}, timeout=0.5)
            except McpUpstreamError as exc:
                return exc, time.monotonic() - started
            finally:
                await bridge.close_run("run_t")
            raise AssertionError("a silent upstream answered")

        error, elapsed = asyncio.run(scenario())

    assert error.kind == "timeout"
    assert "'silent' did not answer within 0.5 s" in error.message
    assert elapsed < 1.5  # the bound, and no polite close of a session never opened
