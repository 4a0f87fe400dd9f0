"""json_query and read_table: selections, windows, hostile files, caps, no way out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.runtime.conftest import LIMITS, Tools

ESCAPES = ["../x.json", "/etc/passwd", "assets/../../x", "etc_link/passwd"]
DOC = {
    "items": [{"id": 1, "name": "one", "tags": ["a"]}, {"id": 2, "name": "two"}],
    "meta": {"odd key": True},
}


@pytest.fixture(autouse=True)
def files(workspace: Path) -> None:
    (workspace / "etc_link").symlink_to("/etc")
    (workspace / "doc.json").write_text(json.dumps(DOC))
    (workspace / "t.csv").write_text('id,name,score\n1,ann,3\n2,bob,5\n3,"c, d",7\n')


# --- json_query ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected", "matches"),
    [
        (".", DOC, None),
        (".items[0].name", "one", None),
        ("items[-1].id", 2, None),
        (".items[].id", [1, 2], 2),
        (".items[].tags[0]", ["a"], 1),  # an item without tags is skipped under []
        ('.meta["odd key"]', True, None),
        (".meta[]", [True], 1),
    ],
)
def test_json_query_selects(
    tools: Tools, query: str, expected: object, matches: int | None
) -> None:
    result = tools.ok("json_query", path="doc.json", query=query)
    assert json.loads(result["result"]) == expected
    assert result.get("matches") == matches
    assert result["truncated"] is False


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (".items[5]", "out of range: the array has 2 items"),
        (".nope", "no key 'nope' at .; keys there: items, meta"),
        (".items.name", ".items is an array; cannot apply .name"),
        (".items[0].name[]", "is a string; [] needs an array or object"),
        (".items[?]", "bad query"),
    ],
)
def test_json_query_explains_what_is_wrong(tools: Tools, query: str, message: str) -> None:
    assert message in str(tools.fails("json_query", path="doc.json", query=query))


def test_json_query_refuses_broken_and_hostile_json(tools: Tools, workspace: Path) -> None:
    (workspace / "bad.json").write_text("{'single': quotes}")
    assert "is not valid JSON" in str(tools.fails("json_query", path="bad.json"))
    (workspace / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in str(tools.fails("json_query", path="deep.json"))
    assert "missing required argument 'path'" in str(tools.fails("json_query"))
    assert "is a directory" in str(tools.fails("json_query", path="assets"))


def test_json_query_caps_its_output_with_the_marker(tools: Tools, workspace: Path) -> None:
    (workspace / "big.json").write_text(json.dumps([{"n": n, "pad": "x" * 50} for n in range(500)]))
    result = tools.ok("json_query", path="big.json", query=".[]")
    assert result["matches"] == 500
    assert result["truncated"] is True
    assert "[... output truncated:" in result["result"]
    assert len(result["result"].encode()) < LIMITS.tool_output_bytes + 200


@pytest.mark.parametrize("escape", ESCAPES)
def test_json_query_stays_in_the_workspace(tools: Tools, escape: str) -> None:
    assert "outside the workspace" in str(tools.fails("json_query", path=escape))


# --- read_table ------------------------------------------------------------------------------


def rows(result: dict[str, object]) -> list[list[str]]:
    return [json.loads(line) for line in str(result["table"]).splitlines()]


def test_read_table_reads_header_rows_and_count(tools: Tools) -> None:
    result = tools.ok("read_table", path="t.csv")
    assert rows(result) == [
        ["id", "name", "score"],
        ["1", "ann", "3"],
        ["2", "bob", "5"],
        ["3", "c, d", "7"],
    ]
    assert (result["total_rows"], result["rows_shown"], result["delimiter"]) == (3, 3, ",")
    assert "next_offset" not in result


def test_read_table_windows_and_picks_columns(tools: Tools) -> None:
    result = tools.ok("read_table", path="t.csv", offset=2, limit=1, columns=["score", "id"])
    assert rows(result) == [["score", "id"], ["5", "2"]]
    assert (result["total_rows"], result["next_offset"]) == (3, 3)


def test_read_table_reads_tsv_and_named_delimiters(tools: Tools, workspace: Path) -> None:
    (workspace / "t.tsv").write_text("a\tb\n1\t2\n")
    assert rows(tools.ok("read_table", path="t.tsv")) == [["a", "b"], ["1", "2"]]
    (workspace / "semi.txt").write_text("a;b\n1;2\n")
    assert rows(tools.ok("read_table", path="semi.txt", delimiter="semicolon")) == [
        ["a", "b"],
        ["1", "2"],
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"columns": ["nope"]}, "no column named 'nope'; the columns: 'id', 'name', 'score'"),
        ({"delimiter": "::"}, "bad delimiter"),
        ({"limit": 0}, "must be >= 1"),
        ({"limit": 5000}, "must be <= 1000"),
        ({"columns": "id"}, "must be array"),
    ],
)
def test_read_table_bad_arguments(tools: Tools, args: dict[str, object], message: str) -> None:
    assert message in str(tools.fails("read_table", path="t.csv", **args))


def test_read_table_refuses_a_hostile_field(tools: Tools, workspace: Path) -> None:
    (workspace / "huge.csv").write_text('a\n"' + "x" * (2 * 1024 * 1024) + '"\n')
    assert "not a table this reader can parse" in str(tools.fails("read_table", path="huge.csv"))
    (workspace / "empty.csv").write_text("")
    assert "is empty" in str(tools.fails("read_table", path="empty.csv"))


def test_read_table_caps_its_output_at_a_row_with_the_marker(tools: Tools, workspace: Path) -> None:
    (workspace / "wide.csv").write_text("a,b\n" + "".join(f"{n},{'y' * 200}\n" for n in range(400)))
    result = tools.ok("read_table", path="wide.csv", limit=1000)
    assert result["truncated"] is True
    assert "[... output truncated:" in result["table"]
    shown = result["rows_shown"]
    assert 0 < shown < 400
    assert result["next_offset"] == shown + 1
    assert result["total_rows"] == 400


@pytest.mark.parametrize("escape", ESCAPES)
def test_read_table_stays_in_the_workspace(tools: Tools, escape: str) -> None:
    assert "outside the workspace" in str(tools.fails("read_table", path=escape))
