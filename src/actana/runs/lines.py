"""One line of what a sandbox prints: framing, text hygiene and parsing into a raw event.

A sandbox is untrusted, so its stdout is treated as hostile bytes:

- `capped_lines` splits the byte stream on `b"\\n"` only (never on `\\r`, U+2028 or anything
  else a Unicode-aware splitter would honour) and never holds more than `max_line_bytes` of one
  line: an endless or huge line costs a counter, not memory.
- `clean_text` / `clean_value` make every string safe to store and to show: control characters
  that could drive a terminal (ANSI escapes), fake a line break in a log viewer (bare `\\r`,
  U+2028/U+2029), reorder displayed text (bidi overrides) or break UTF-8 encoders (lone
  surrogates) become U+FFFD, and strings, keys and nesting depth are capped.
- `parse_sandbox_line` turns one framed line into the raw event to record: the sandbox's own,
  validated against the protocol dataclasses, or a warn line saying why it was dropped.

What to do with the event (envelope, hash chain, the run-level rules) is `actana.runs.ingest`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from actana.protocol.events import (
    EVENT_TYPES,
    DeltaEvent,
    ErrorEvent,
    LogEvent,
    ResultEvent,
    StepEvent,
    event_to_dict,
    now_ms,
)

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
MAX_DATA_BYTES = 16 * 1024
MAX_STRING_BYTES = 64 * 1024
MAX_KEY_BYTES = 256
MAX_DEPTH = 32
REPLACEMENT = "\ufffd"
# The envelope belongs to the worker: whatever the sandbox sends under these names is dropped.
WORKER_KEYS = frozenset({"v", "run", "seq", "ts", "prev"})

# C0 except \t and \n, DEL, C1, the Unicode line/paragraph separators, the bidi embedding,
# override and isolate controls (they make a log line display differently from what it says)
# and lone surrogates (json.loads accepts "\ud800" escapes; encoding them to UTF-8 later fails).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "log": TypeAdapter(LogEvent),
    "step": TypeAdapter(StepEvent),
    "delta": TypeAdapter(DeltaEvent),
    "result": TypeAdapter(ResultEvent),
    "error": TypeAdapter(ErrorEvent),
}


@dataclass(frozen=True)
class OversizedLine:
    """Stands in for a line longer than the cap; its bytes were discarded, never buffered.

    Attributes:
        size: length of the discarded line in bytes, without its newline.
        limit: the cap it exceeded.
    """

    size: int
    limit: int


async def capped_lines(
    chunks: AsyncIterator[bytes], max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> AsyncIterator[bytes | OversizedLine]:
    """Yield the lines of a byte stream (without their `\\n`), or `OversizedLine` markers.

    Only `b"\\n"` ends a line; a `\\r` before it stays part of the line (JSON treats it as
    whitespace, and `clean_text` neutralises it inside strings). At most `max_line_bytes` of
    the current line are buffered: once a line grows past the cap, the rest of it is counted
    and discarded until the next newline, and one `OversizedLine` is yielded in its place. A
    last line without a newline is yielded at end of stream; an empty remainder is not.
    """
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be at least 1")
    buffer = bytearray()
    skipped: int | None = None  # bytes seen of the oversized line being discarded, if any
    async for chunk in chunks:
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            end = len(chunk) if newline < 0 else newline
            if skipped is not None:
                skipped += end - start
            elif len(buffer) + (end - start) > max_line_bytes:
                skipped = len(buffer) + (end - start)
                buffer = bytearray()  # drop the partial line now: the cap is on memory
            else:
                buffer += chunk[start:end]
            if newline < 0:
                break
            if skipped is not None:
                yield OversizedLine(skipped, max_line_bytes)
                skipped = None
            else:
                yield bytes(buffer)
                buffer = bytearray()
            start = newline + 1
    if skipped is not None:
        yield OversizedLine(skipped, max_line_bytes)
    elif buffer:
        yield bytes(buffer)


def clean_text(text: str, max_bytes: int = MAX_STRING_BYTES) -> str:
    """`text` with unsafe characters replaced by U+FFFD and cut to `max_bytes` of UTF-8.

    A `\\r\\n` pair becomes `\\n` first: tools print CRLF output all the time and a U+FFFD
    before every line break would only add noise; a bare `\\r` (progress bars, overprinting
    tricks) is neutralised like any other control character. A cut string ends with a marker
    saying how many bytes were dropped, so a truncated value never passes for a complete one.
    """
    text = _UNSAFE.sub(REPLACEMENT, text.replace("\r\n", "\n"))
    if len(text) * 4 <= max_bytes:  # no character takes more than 4 bytes: certainly fits
        return text
    encoded = text.encode("utf-8")  # cannot fail: the surrogates are gone
    if len(encoded) <= max_bytes:
        return text
    # errors="ignore" drops a character cut in half at the boundary.
    kept = encoded[:max_bytes].decode("utf-8", errors="ignore")
    dropped = len(encoded) - len(kept.encode("utf-8"))
    return f"{kept}…[truncated {dropped} bytes]"


def clean_value(value: Any, max_string_bytes: int = MAX_STRING_BYTES, depth: int = 0) -> Any:
    """A JSON value with every string and key cleaned, and nesting cut at `MAX_DEPTH`.

    The input comes from `json.loads`, so it holds only dicts, lists, str, int, float, bool
    and None. The depth cap keeps this recursion (and everything downstream that walks the
    value) far from Python's recursion limit whatever the sandbox nests.
    """
    if isinstance(value, str):
        return clean_text(value, max_string_bytes)
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        return f"…[nested deeper than {MAX_DEPTH} levels]"
    if isinstance(value, dict):
        return {
            clean_text(str(key), MAX_KEY_BYTES): clean_value(item, max_string_bytes, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [clean_value(item, max_string_bytes, depth + 1) for item in value]
    return value


_JSON_KINDS: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def warn_event(message: str, ts: int) -> dict[str, Any]:
    """A `log` warn line written by the worker about the sandbox's output."""
    return {"type": "log", "level": "warn", "message": message, "ts": ts}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # json.loads would accept NaN and Infinity


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 parses to inf, which json.dumps cannot write back
        raise ValueError("number out of range")
    return number


def capped_data(value: Any) -> Any:
    """`value` itself if its JSON is small enough, else the start of that JSON as a string."""
    text = json.dumps(value, ensure_ascii=False)
    return value if len(text.encode()) <= MAX_DATA_BYTES else clean_text(text, MAX_DATA_BYTES)


def _describe(exc: ValidationError) -> str:
    # include_input=False: the message is stored and shown, the offending value must not be.
    errors = exc.errors(include_url=False, include_input=False)
    parts = [f"field {'.'.join(map(str, e['loc'])) or 'line'!r}: {e['msg']}" for e in errors[:3]]
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more problems")
    return clean_text("; ".join(parts), 1024)


def parse_sandbox_line(
    item: bytes | OversizedLine, *, now: int | None = None
) -> list[dict[str, Any]]:
    """The events to record for one line of sandbox output: none for a blank line, else one.

    The one event is either the sandbox's event (validated against the protocol dataclasses,
    every string cleaned and capped, the worker-owned keys v/run/seq/prev removed, `ts` kept
    only if it is an integer) or, when the line cannot be accepted, a `log` warn line saying
    why, without echoing the line. An unknown `type` is kept as an info `log` line with the
    object under `data`. A trailing `\\r` (CRLF output) is JSON whitespace and parses fine.
    """
    stamp = now_ms() if now is None else now

    def dropped(reason: str) -> list[dict[str, Any]]:
        size = item.size if isinstance(item, OversizedLine) else len(item)
        return [warn_event(f"dropped a line {reason} ({size} bytes)", stamp)]

    if isinstance(item, OversizedLine):
        return dropped(f"longer than the limit of {item.limit} bytes")
    if not item.strip():
        return []
    try:
        obj = json.loads(
            item.decode("utf-8", errors="replace"),
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return dropped("that is not JSON")
    if not isinstance(obj, dict):
        return dropped(f"that is not a JSON object but {_JSON_KINDS.get(type(obj), 'a value')}")
    obj = clean_value(obj)
    kind = obj.get("type")
    if not isinstance(kind, str):
        return dropped("without a string 'type'")
    ts = obj.get("ts")
    ts = ts if isinstance(ts, int) and not isinstance(ts, bool) else stamp
    if kind not in EVENT_TYPES:
        message = f"unknown event type {clean_text(kind, 64)!r}"
        data = capped_data(obj)
        return [{"type": "log", "level": "info", "message": message, "data": data, "ts": ts}]
    fields = {key: value for key, value in obj.items() if key not in WORKER_KEYS}
    try:
        # Strict JSON-mode validation: no "5" -> 5 or true -> 1 coercions of sandbox values.
        event = _ADAPTERS[kind].validate_json(json.dumps(fields), strict=True)
    except ValidationError as exc:
        return dropped(f"of type {kind!r}: {_describe(exc)}")
    return [{**event_to_dict(event), "ts": ts}]
