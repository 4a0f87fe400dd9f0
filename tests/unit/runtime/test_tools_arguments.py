"""check_args against the schemas third-party MCP servers declare: validate what is understood,
never crash on what is not."""

from __future__ import annotations

from typing import Any

import pytest

from actana.runtime.tools.arguments import check_args

SEARCH = {  # the shape of a typical MCP tool schema (no additionalProperties: extras allowed)
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1},
        "limit": {"type": ["integer", "null"], "minimum": 1, "maximum": 50},
        "mode": {"enum": ["fast", "deep"]},
        "filters": {
            "type": "object",
            "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["tags"],
            "additionalProperties": False,
        },
        "point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}]},
        "id": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "ratio": {"type": "number", "exclusiveMaximum": 1},
        "flag": {"type": "boolean", "nullable": True},
    },
    "required": ["query"],
}


@pytest.mark.parametrize(
    "args",
    [
        {"query": "x"},
        {"query": "x", "limit": None, "mode": "deep", "extra": {"anything": 1}},
        {"query": "x", "limit": 5.0},  # JSON has one number type: 5.0 is an integer
        {"query": "x", "filters": {"tags": ["a", "b"]}, "point": [1, 2.5], "id": 7},
        {"query": "x", "flag": None, "ratio": 0.5},
    ],
)
def test_valid_arguments_pass(args: dict[str, Any]) -> None:
    assert check_args(SEARCH, args) == []


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({}, "missing required argument 'query'"),
        ({"query": ""}, "argument 'query' must not be empty"),
        ({"query": "x", "limit": "5"}, "argument 'limit' must be integer or null, got str"),
        ({"query": "x", "limit": 99}, "argument 'limit' must be <= 50, got 99"),
        ({"query": "x", "limit": True}, "argument 'limit' must be integer or null, got bool"),
        ({"query": "x", "mode": "slow"}, "argument 'mode' must be one of 'fast', 'deep'"),
        ({"query": "x", "filters": {}}, "missing required argument 'filters.tags'"),
        ({"query": "x", "filters": {"tags": [1]}}, "argument 'filters.tags[0]' must be string"),
        ({"query": "x", "filters": {"tags": [], "x": 1}}, "unknown argument 'filters.x'"),
        ({"query": "x", "point": ["a", 1]}, "argument 'point[0]' must be number, got str"),
        ({"query": "x", "id": 1.5}, "argument 'id' matches none of the allowed forms"),
        ({"query": "x", "ratio": 1}, "argument 'ratio' must be < 1"),
    ],
)
def test_invalid_arguments_are_explained(args: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in check_args(SEARCH, args)), check_args(SEARCH, args)


@pytest.mark.parametrize(
    "schema",
    [
        {},
        {"type": "object"},
        {"properties": None, "required": "query"},
        {"type": "object", "properties": {"a": "not a schema"}, "required": [1, None]},
        {"type": 5, "enum": "nope", "minimum": "low", "items": 3, "anyOf": "x", "allOf": [None]},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/thing"}}, "$defs": {}},
        {"type": ["object", "mystery-type"], "additionalProperties": {"type": "integer"}},
        None,
        [],
    ],
)
def test_odd_schemas_never_crash(schema: Any) -> None:
    problems = check_args(schema, {"a": [1, {"b": None}], "c": "x"})
    assert isinstance(problems, list)


def test_additional_properties_schema_and_deep_nesting_are_checked_within_bounds() -> None:
    typed_extras = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert check_args(typed_extras, {"a": 1, "b": "x"}) == ["argument 'b' must be integer, got str"]
    nested: dict[str, Any] = {"type": "array"}
    value: Any = 1
    for _ in range(200):
        nested = {"type": "array", "items": nested}
        value = [value]
    assert check_args({"type": "object", "properties": {"v": nested}}, {"v": value}) == []


def test_arguments_must_be_an_object_and_problems_are_bounded() -> None:
    assert check_args(SEARCH, ["query"]) == ["the arguments must be a JSON object, got list"]
    many = {"type": "object", "additionalProperties": False}
    problems = check_args(many, {f"k{n}": n for n in range(100)})
    assert len(problems) == 21
    assert problems[-1] == "... and 80 more problems"
