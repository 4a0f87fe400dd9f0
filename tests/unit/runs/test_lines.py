"""Framing and text hygiene of sandbox output: `capped_lines`, `clean_text`, `clean_value`."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator

import pytest

from actana.runs.lines import (
    MAX_DEPTH,
    MAX_KEY_BYTES,
    OversizedLine,
    capped_lines,
    clean_text,
    clean_value,
)
from tests.unit.runs.support import chunked

pytestmark = pytest.mark.anyio


async def collect(parts: list[bytes], cap: int = 1024) -> list[bytes | OversizedLine]:
    return [item async for item in capped_lines(chunked(parts), cap)]


# --- capped_lines ------------------------------------------------------------------------------


async def test_splits_on_newline_only() -> None:
    parts = [b"a\rb\n", "c\u2028d\u2029e\x85f\n".encode(), b"g\r\n"]
    assert await collect(parts) == [b"a\rb", "c\u2028d\u2029e\x85f".encode(), b"g\r"]


async def test_lines_across_chunks_and_many_per_chunk() -> None:
    parts = [b"ab", b"c\nde", b"f\n\ng\nh", b"", b"ij"]
    assert await collect(parts) == [b"abc", b"def", b"", b"g", b"hij"]


async def test_final_line_without_newline_is_yielded_but_no_empty_remainder() -> None:
    assert await collect([b"one\ntwo"]) == [b"one", b"two"]
    assert await collect([b"one\n"]) == [b"one"]
    assert await collect([]) == []


async def test_cap_boundary() -> None:
    assert await collect([b"x" * 8 + b"\n"], cap=8) == [b"x" * 8]
    assert await collect([b"x" * 9 + b"\nok\n"], cap=8) == [OversizedLine(9, 8), b"ok"]
    # Past the cap in a later chunk, and an oversized last line without a newline.
    assert await collect([b"xxxxx", b"xxxxx\nok\n", b"yyyyyyyyyy"], cap=8) == [
        OversizedLine(10, 8),
        b"ok",
        OversizedLine(10, 8),
    ]


async def test_ten_megabyte_line_costs_a_counter_not_memory() -> None:
    """A 10 MB line fed in 64 KB chunks: one marker, the next line intact, memory bounded."""
    chunk = b"x" * 65536
    cap = 256 * 1024
    total = 10 * 1024 * 1024

    async def stream() -> AsyncIterator[bytes]:
        yield b'{"type":"log","level":"info","message":"before"}\n'
        for _ in range(total // len(chunk)):
            yield chunk  # the same object every time: the test itself allocates nothing
        yield b'\n{"type":"log","level":"info","message":"after"}\n'

    tracemalloc.start()
    try:
        items = [item async for item in capped_lines(stream(), cap)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert items == [
        b'{"type":"log","level":"info","message":"before"}',
        OversizedLine(total, cap),
        b'{"type":"log","level":"info","message":"after"}',
    ]
    assert peak < cap + 4 * len(chunk), peak  # never the whole line, only about one cap's worth


async def test_rejects_a_zero_cap() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await collect([b"x\n"], cap=0)


# --- clean_text / clean_value ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b[2Jcleared", "\ufffd[2Jcleared"),  # ANSI: no terminal control survives
        ("a\r\nb", "a\nb"),  # CRLF output reads as plain lines
        ("50%\r100%", "50%\ufffd100%"),  # a bare CR could overprint a line in a viewer
        ("tab\there\nnext", "tab\there\nnext"),  # tab and newline are fine
        ("x\x00\x07\x08\x0b\x0c\x7f\x85\x9fy", "x" + "\ufffd" * 8 + "y"),
        ("a\u2028b\u2029c", "a\ufffdb\ufffdc"),
        ("safe\u202egnp.exe", "safe\ufffdgnp.exe"),  # bidi override
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("héllo wörld ✓ 𝄞", "héllo wörld ✓ 𝄞"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_clean_text_caps_bytes_with_a_marker() -> None:
    assert clean_text("abcdef", max_bytes=6) == "abcdef"
    assert clean_text("abcdefgh", max_bytes=6) == "abcdef…[truncated 2 bytes]"
    # A multi-byte character is never cut in half: "é" is 2 bytes and does not fit in 1.
    assert clean_text("aé" * 10, max_bytes=2) == "a…[truncated 29 bytes]"
    big = clean_text("x" * 200_000)
    assert big.startswith("x" * 65536)
    assert big.endswith("…[truncated 134464 bytes]")


def test_clean_value_cleans_keys_and_caps_depth() -> None:
    deep: object = "bottom"
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    value = clean_value({"k\x1bey": ["v\x07", 1, 2.5, True, None], "long" * 100: deep})
    assert value["k\ufffdey"] == ["v\ufffd", 1, 2.5, True, None]
    long_key = next(key for key in value if key.startswith("long"))
    assert len(long_key.encode()) <= MAX_KEY_BYTES + 40
    node = value[long_key]  # the dict is depth 0, so this list is depth 1
    for _ in range(MAX_DEPTH - 2):
        node = node[0]
    assert node == [f"…[nested deeper than {MAX_DEPTH} levels]"]
