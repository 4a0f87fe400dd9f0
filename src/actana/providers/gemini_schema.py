"""JSON schemas cut down to the `Schema` of Gemini's function declarations, an OpenAPI subset.

Gemini answers 400 "Unknown name" for JSON-schema keywords it does not know (`additionalProperties`,
`$schema`, `$ref`, `default`, `examples`, ...) and refuses some values it does know; the tools'
schemas are therefore rewritten into the subset it takes before they are sent.
"""

from __future__ import annotations

from typing import Any

_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}
_FORMATS = {
    "STRING": {"enum", "date-time"},
    "NUMBER": {"float", "double"},
    "INTEGER": {"int32", "int64"},
}
_TEXT_KEYS = ("title", "description", "pattern")
_COUNT_KEYS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema as the `Schema` of Gemini's function declarations (an OpenAPI subset).

    Kept: type (upper case), title, description, pattern, nullable, string enums, properties,
    required (only names that are properties), items, anyOf, minimum/maximum, the min/max
    counts, and the formats Gemini knows for the type. Rewritten: a type list with "null" becomes
    the type plus `nullable`, a string `const` a one-value enum, `oneOf` an `anyOf`. Dropped,
    because Gemini answers 400 "Unknown name" or refuses the value: `additionalProperties`,
    `$schema`, `$id`, `$ref`, `$defs`, `default`, `examples`, `allOf`, `not`, `exclusiveMinimum`,
    `exclusiveMaximum`, `multipleOf`, `uniqueItems`, non-string enums, other formats and an empty
    `properties` object.
    """
    out = _schema_type(schema)
    for key in _TEXT_KEYS:
        if isinstance(schema.get(key), str):
            out[key] = schema[key]
    for key in _COUNT_KEYS:
        if _is_int(schema.get(key)):
            out[key] = schema[key]
    for key in ("minimum", "maximum"):
        if _is_int(schema.get(key)) or isinstance(schema.get(key), float):
            out[key] = schema[key]
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt
    enum = [schema["const"]] if isinstance(schema.get("const"), str) else schema.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        out["enum"] = list(enum)
    out.update(_schema_children(schema))
    return out


def _schema_type(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        if "null" in kind:
            out["nullable"] = True
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if isinstance(kind, str) and kind.upper() in _TYPES:
        out["type"] = kind.upper()
    if schema.get("nullable") is True:
        out["nullable"] = True
    return out


def _schema_children(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    properties = schema.get("properties")
    if isinstance(properties, dict) and properties:
        out["properties"] = {
            str(name): gemini_schema(sub if isinstance(sub, dict) else {})
            for name, sub in properties.items()
        }
        required = schema.get("required")
        if isinstance(required, list):
            kept = [name for name in required if name in out["properties"]]
            if kept:
                out["required"] = kept
    if isinstance(schema.get("items"), dict):
        out["items"] = gemini_schema(schema["items"])
    variants = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(variants, list) and variants:
        out["anyOf"] = [gemini_schema(v) for v in variants if isinstance(v, dict)]
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
