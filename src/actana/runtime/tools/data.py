"""The tools that read structured data: `json_query` and `read_table`.

Both read a workspace file, never run code from it, and return a bounded view: a selection of a
JSON document, or a window of rows of a CSV/TSV table. The files are the sandbox's own and may be
hostile: sizes are capped before parsing, deep nesting and over-long fields are refused with a
message rather than crashing, and counting rows stops at the tool's time budget.
"""

# ruff: noqa: PTH112, PTH113, PTH123, PTH202
# Paths stay `str` here on purpose: the workspace confinement is os.path.realpath plus
# os.path.commonpath on strings, and every path handled here has been through it.

from __future__ import annotations

import csv
import json
import os
import re
import time
from typing import Any

from actana.protocol.payloads import RunLimits
from actana.runtime.tools.base import (
    PATH_ARG,
    Invocation,
    Tool,
    ToolError,
    cap_lines,
    cap_text,
    schema,
)
from actana.runtime.tools.paths import display, resolve

_MAX_JSON_BYTES = 32 * 1024 * 1024
_MAX_FIELD_CHARS = 1024 * 1024
_DEFAULT_ROWS = 50
_MAX_ROWS = 1000
# One step of a query: .key, ["any key"], [index], or [] (every element).
_STEP = re.compile(r'\.([A-Za-z_$][\w$-]*)|\[("(?:[^"\\]|\\.)*")\]|\[(-?\d+)\]|(\[\])')
_ITERATE = object()


def _existing_file(inv: Invocation, path: str) -> str:
    real = resolve(inv.root, path)
    if os.path.isdir(real):
        raise ToolError(f"'{path}' is a directory; give a file")
    if not os.path.isfile(real):
        raise ToolError(f"'{path}' does not exist (or is not a regular file)")
    return real


def parse_query(query: str) -> list[Any]:
    """The steps of a query: str keys, int indexes and `_ITERATE` for `[]`.

    Raises:
        ToolError: the query does not follow the syntax, saying where.
    """
    text = query.strip()
    if text in ("", "."):
        return []
    if text.startswith(".["):
        text = text[1:]  # jq's `.[0]` and `.[]`
    elif not text.startswith((".", "[")):
        text = "." + text  # `items[0]` reads as `.items[0]`
    steps: list[Any] = []
    at = 0
    while at < len(text):
        match = _STEP.match(text, at)
        if match is None:
            raise ToolError(
                f"bad query {query!r:.200} at character {at + 1} ({text[at : at + 20]!r}); use "
                'steps like .key, ["key with spaces"], [0], [-1] and [] (every element)'
            )
        key, quoted, index, _ = match.groups()
        if key is not None:
            steps.append(key)
        elif quoted is not None:
            steps.append(json.loads(quoted))
        elif index is not None:
            steps.append(int(index))
        else:
            steps.append(_ITERATE)
        at = match.end()
    return steps


def _step_name(step: Any) -> str:
    if step is _ITERATE:
        return "[]"
    return f"[{step}]" if isinstance(step, int) else f".{step}"


def _select(document: Any, steps: list[Any]) -> tuple[list[Any], bool]:
    """Apply the steps; returns (selected values, whether `[]` made it a list of matches)."""
    values, many, where = [document], False, ""
    for step in steps:
        following: list[Any] = []
        for value in values:
            if step is _ITERATE:
                if isinstance(value, list):
                    following.extend(value)
                elif isinstance(value, dict):
                    following.extend(value.values())
                elif not many:
                    raise ToolError(
                        f"{where or '.'} is {_kind(value)}; [] needs an array or object"
                    )
            elif isinstance(step, int) and isinstance(value, list):
                if -len(value) <= step < len(value):
                    following.append(value[step])
                elif not many:
                    raise ToolError(
                        f"{where}[{step}] is out of range: the array has {len(value)} items"
                    )
            elif isinstance(step, str) and isinstance(value, dict):
                if step in value:
                    following.append(value[step])
                elif not many:
                    keys = ", ".join(list(value)[:30])
                    raise ToolError(f"no key {step!r} at {where or '.'}; keys there: {keys}")
            elif not many:
                raise ToolError(
                    f"{where or '.'} is {_kind(value)}; cannot apply {_step_name(step)}"
                )
        many = many or step is _ITERATE
        values = following
        where += _step_name(step)
    return values, many


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def json_query(inv: Invocation) -> dict[str, Any]:
    """Select part of a JSON file with a small path syntax; the selection as indented JSON."""
    path: str = inv.args["path"]
    steps = parse_query(inv.args.get("query", "."))
    real = _existing_file(inv, path)
    if os.path.getsize(real) > _MAX_JSON_BYTES:
        raise ToolError(f"'{path}' is larger than {_MAX_JSON_BYTES} bytes; use bash (e.g. jq)")
    with open(real, "rb") as f:
        raw = f.read(_MAX_JSON_BYTES + 1)
    try:
        document = json.loads(raw)
    except RecursionError:
        raise ToolError(f"'{path}' is nested too deeply to read here") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ToolError(f"'{path}' is not valid JSON: {exc}") from None
    values, many = _select(document, steps)
    selected = values if many else values[0]
    try:
        shown = json.dumps(selected, indent=2, ensure_ascii=False)
    except RecursionError:
        raise ToolError(
            "the selection is nested too deeply to show; select a deeper part"
        ) from None
    text, truncated = cap_text(shown, inv.output_cap)
    result: dict[str, Any] = {"path": display(inv.root, real), "result": text}
    if many:
        result["matches"] = len(values)
    result["truncated"] = truncated
    return result


def _delimiter(path: str, given: str | None, sample: str) -> str:
    if given is not None:
        named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
        delimiter = named.get(given.lower(), given)
        if len(delimiter) != 1 or delimiter in '\r\n"':
            raise ToolError(f"bad delimiter {given!r}; give one character, or 'tab'")
        return delimiter
    if path.lower().endswith((".tsv", ".tab")):
        return "\t"
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def read_table(inv: Invocation) -> dict[str, Any]:
    """The header and a window of rows of a CSV/TSV file, with the total number of rows."""
    path: str = inv.args["path"]
    offset: int = inv.args.get("offset", 1)
    limit: int = inv.args.get("limit", _DEFAULT_ROWS)
    real = _existing_file(inv, path)
    end = time.monotonic() + inv.timeout_sec
    csv.field_size_limit(_MAX_FIELD_CHARS)
    with open(real, encoding="utf-8-sig", errors="replace", newline="") as f:
        delimiter = _delimiter(path, inv.args.get("delimiter"), f.read(16 * 1024))
        f.seek(0)
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                raise ToolError(f"'{path}' is empty")
            keep = _columns(header, inv.args.get("columns"))
            rows: list[list[str]] = []
            total: int | None = 0
            for number, row in enumerate(reader, start=1):
                if offset <= number < offset + limit:
                    rows.append([row[i] if i < len(row) else "" for i in keep])
                total = number
                if time.monotonic() > end:
                    total = None  # counting stopped: the file is too big to count in time
                    break
        except csv.Error as exc:
            raise ToolError(f"'{path}' is not a table this reader can parse: {exc}") from None
    lines = [json.dumps([header[i] for i in keep], ensure_ascii=False)]
    lines += [json.dumps(row, ensure_ascii=False) for row in rows]
    text, shown, truncated = cap_lines(lines, inv.output_cap)
    rows_shown = max(0, shown - 1)
    result: dict[str, Any] = {
        "path": display(inv.root, real),
        "delimiter": delimiter,
        "table": text,
        "offset": offset,
        "rows_shown": rows_shown,
        "total_rows": total,
        "truncated": truncated,
    }
    if total is None or offset + rows_shown <= total:
        result["next_offset"] = offset + rows_shown
    if total is None:
        result["note"] = "ran out of time counting rows; total_rows is unknown"
    return result


def _columns(header: list[str], wanted: list[str] | None) -> list[int]:
    if not wanted:
        return list(range(len(header)))
    missing = [name for name in wanted if name not in header]
    if missing:
        shown = ", ".join(repr(h) for h in header[:50])
        raise ToolError(f"no column named {', '.join(map(repr, missing))}; the columns: {shown}")
    return [header.index(name) for name in wanted]


def tools(limits: RunLimits) -> list[Tool]:
    """json_query and read_table, with the run's limits applied."""
    timeout = float(limits.tool_timeout_sec)
    out_cap = limits.tool_output_bytes
    return [
        Tool(
            "json_query",
            "Read a JSON file and select part of it. query is a path: '.' (all), '.key', "
            "'[\"key with spaces\"]', '[0]' or '[-1]' (array items), '[]' or '.[]' (every item: a "
            "list of matches), chained as in '.items[0].name' or '.items[].id'. Returns result "
            f"(indented JSON, cut at {out_cap} bytes with truncated set), and matches when [] "
            f"was used. Files up to {_MAX_JSON_BYTES} bytes.",
            schema(
                {"path": PATH_ARG, "query": {"type": "string", "description": "Default '.'."}},
                ["path"],
            ),
            timeout,
            out_cap,
            json_query,
        ),
        Tool(
            "read_table",
            "Read a CSV or TSV file: table holds the header then the requested rows, each line a "
            "JSON array of strings; total_rows counts all data rows; next_offset is there when "
            f"more rows follow. Rows from offset (1-based, default 1), limit rows (default "
            f"{_DEFAULT_ROWS}, at most {_MAX_ROWS}); columns picks columns by header name. The "
            "delimiter is guessed (.tsv means tab) unless given. Output cut at "
            f"{out_cap} bytes at a row boundary.",
            schema(
                {
                    "path": PATH_ARG,
                    "delimiter": {"type": "string", "description": "One character, or 'tab'."},
                    "offset": {"type": "integer", "minimum": 1},
                    "limit": {"type": "integer", "minimum": 1, "maximum": _MAX_ROWS},
                    "columns": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                },
                ["path"],
            ),
            timeout,
            out_cap,
            read_table,
        ),
    ]
