"""`parse_sandbox_line`: every kind of hostile line becomes one safe event or one warn line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actana.runs.lines import MAX_DATA_BYTES, OversizedLine, parse_sandbox_line
from tests.unit.runs.support import line

NOW = 1_700_000_000_000


def parse(raw: bytes | OversizedLine) -> dict[str, Any]:
    events = parse_sandbox_line(raw, now=NOW)
    assert len(events) == 1
    return events[0]


def assert_warn(event: dict[str, Any], message: str) -> None:
    assert event == {"type": "log", "level": "warn", "message": message, "ts": NOW}


def test_a_valid_line_is_kept_with_its_ts() -> None:
    event = parse(line(type="log", level="info", message="hi", ts=NOW - 5))
    assert event == {"type": "log", "level": "info", "message": "hi", "ts": NOW - 5}


@pytest.mark.parametrize("ts", ["123", True, 1.5, None, [1]])
def test_a_ts_that_is_not_an_integer_becomes_the_worker_clock(ts: object) -> None:
    assert parse(line(type="delta", text="x", ts=ts))["ts"] == NOW


@pytest.mark.parametrize("raw", [b"", b"   ", b"\r", b"\t \r"])
def test_blank_lines_record_nothing(raw: bytes) -> None:
    assert parse_sandbox_line(raw, now=NOW) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"type":"log"',
        b'{"type":"log","message":"\x1b raw control char inside a string"}',
        b'{"type":"delta","text":NaN}',
        b'{"type":"delta","text":"x","n":Infinity}',
        b'{"type":"delta","text":"x","n":1e999}',
        b'{"type":"delta","text":"x","n":' + b"9" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"type":"log"}{"type":"log"}',
    ],
)
def test_lines_that_are_not_json_are_dropped_with_a_warn(raw: bytes) -> None:
    assert_warn(parse(raw), f"dropped a line that is not JSON ({len(raw)} bytes)")


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (b"[1,2,3]", "an array"),
        (b"42", "a number"),
        (b"-1.5e3", "a number"),
        (b'"a string"', "a string"),
        (b"null", "null"),
        (b"true", "a boolean"),
    ],
)
def test_json_that_is_not_an_object_is_dropped(raw: bytes, what: str) -> None:
    expected = f"dropped a line that is not a JSON object but {what} ({len(raw)} bytes)"
    assert_warn(parse(raw), expected)


@pytest.mark.parametrize("raw", [b"{}", b'{"type":5}', b'{"type":null,"message":"x"}'])
def test_an_object_without_a_string_type_is_dropped(raw: bytes) -> None:
    assert_warn(parse(raw), f"dropped a line without a string 'type' ({len(raw)} bytes)")


def test_an_oversized_line_becomes_a_warn() -> None:
    assert_warn(
        parse(OversizedLine(10_485_760, 1_048_576)),
        "dropped a line longer than the limit of 1048576 bytes (10485760 bytes)",
    )


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"type": "log", "level": "loud", "message": "m"}, "field 'level': Input should be"),
        ({"type": "log", "level": "info", "message": 5}, "field 'message': Input should be a"),
        ({"type": "log", "level": "info"}, "field 'message': Field required"),
        ({"type": "step", "name": "bash", "status": "running"}, "field 'id': Field required"),
        ({"type": "step", "id": "1", "name": "b", "status": "done"}, "field 'status'"),
        ({"type": "delta", "text": "x", "ts": 1} | {"text": None}, "field 'text'"),
        ({"type": "error", "code": "oops", "message": "m"}, "field 'code'"),
        ({"type": "result", "message": "m", "usage": {"input_tokens": "9"}}, "usage.input_tokens"),
        # Strict: no "5" -> 5 or true -> 1 coercions of sandbox values.
        ({"type": "log", "level": "info", "message": "m", "durationMs": "5"}, "'durationMs'"),
        ({"type": "result", "message": "m", "rounds": True}, "field 'rounds'"),
    ],
)
def test_known_types_with_wrong_fields_are_dropped_naming_the_problem(
    fields: dict[str, Any], problem: str
) -> None:
    event = parse(line(**fields))
    assert event["level"] == "warn"
    assert event["message"].startswith(f"dropped a line of type {fields['type']!r}: ")
    assert problem in event["message"]


def test_the_warn_never_echoes_the_rejected_value() -> None:
    event = parse(line(type="log", level="sk-ant-secret-value", message="m"))
    assert "sk-ant" not in json.dumps(event)


def test_unknown_types_are_kept_as_info_logs_with_the_object_as_data() -> None:
    event = parse(line(type="telemetry", cpu=0.5, note="\x1b[31mred"))
    assert event == {
        "type": "log",
        "level": "info",
        "message": "unknown event type 'telemetry'",
        "data": {"type": "telemetry", "cpu": 0.5, "note": "\ufffd[31mred"},
        "ts": NOW,
    }


def test_a_big_unknown_object_is_kept_only_as_a_capped_preview() -> None:
    event = parse(line(type="blob", parts=["x" * 60_000, "y" * 60_000]))
    assert isinstance(event["data"], str)
    assert event["data"].startswith('{"type": "blob"')
    assert len(event["data"].encode()) < MAX_DATA_BYTES + 100
    assert event["data"].endswith("bytes]")


def test_an_unknown_type_name_is_cleaned_and_capped_in_the_message() -> None:
    event = parse(line(type="\x1b]0;pwned\x07" + "z" * 500))
    assert "\x1b" not in event["message"]
    assert "\x07" not in event["message"]
    assert len(event["message"]) < 120


def test_worker_owned_keys_from_the_sandbox_are_dropped() -> None:
    event = parse(line(type="delta", text="x", v=9, run="other", seq=77, prev="f" * 64))
    assert event == {"type": "delta", "text": "x", "ts": NOW}


def test_unknown_fields_of_known_types_are_dropped() -> None:
    event = parse(line(type="log", level="info", message="m", api_key="secret"))
    assert "api_key" not in event


def test_control_characters_and_ansi_escapes_are_neutralised_everywhere() -> None:
    raw = line(
        type="step",
        id="s\x1b1",
        name="bash",
        status="succeeded",
        args={"cmd\x1b": "printf '\x1b[2J'"},
        result={"stdout": "line1\r\nline2\rover\x00", "nested": [{"k": "\x9b31m"}]},
    )
    event = parse(raw)
    assert event["id"] == "s\ufffd1"
    assert event["args"] == {"cmd\ufffd": "printf '\ufffd[2J'"}
    assert event["result"] == {
        "stdout": "line1\nline2\ufffdover\ufffd",
        "nested": [{"k": "\ufffd31m"}],
    }


def test_u2028_inside_a_string_becomes_ufffd() -> None:
    raw = '{"type":"delta","text":"a\u2028b\u2029c"}'.encode()  # raw UTF-8, valid JSON
    assert parse(raw)["text"] == "a\ufffdb\ufffdc"
    assert parse(line(type="delta", text="a\u2028b"))["text"] == "a\ufffdb"  # escaped form


def test_invalid_utf8_becomes_replacement_characters() -> None:
    event = parse(b'{"type":"delta","text":"caf\xe9 \xff\xfe"}')
    assert event["text"] == "caf\ufffd \ufffd\ufffd"


def test_a_crlf_terminated_line_parses() -> None:
    # capped_lines leaves the \r on the line; outside strings it is JSON whitespace.
    assert parse(line(type="delta", text="x") + b"\r")["text"] == "x"


def test_long_strings_are_capped_with_a_marker() -> None:
    event = parse(line(type="delta", text="x" * 100_000))
    assert event["text"] == "x" * 65536 + "…[truncated 34464 bytes]"


def test_deep_nesting_inside_a_valid_event_is_cut() -> None:
    deep: object = 1
    for _ in range(200):
        deep = {"d": deep}
    event = parse(line(type="step", id="1", name="n", status="running", args=deep))
    assert "nested deeper than" in json.dumps(event)
