"""Checking a tool call's arguments against the tool's JSON schema, before the tool runs.

The built-in tools use a small, closed subset of JSON schema, but MCP tools bring whatever
schema their (third-party) server declares. So this checker validates the keywords it knows —
type (one or a list), enum, const, properties, required, additionalProperties, items,
prefixItems, anyOf/oneOf/allOf, the numeric bounds and the length/count bounds — and ignores
every other keyword, including a malformed value of a known one: a schema we cannot read must
never crash the run or refuse a call the server would accept. `additionalProperties: false` is
enforced only where a schema says so.

Problems are written for the model, one per finding, with the path of the offending value
(`edits[1].old`), so that it can fix its call in one go.
"""

from __future__ import annotations

from typing import Any

# Past this many findings the rest are left out: one bad call should not flood the context.
_MAX_PROBLEMS = 20
# Schemas and values nest; beyond this depth nothing more is checked (a hostile server or a
# pathological argument must not cost unbounded recursion).
_MAX_DEPTH = 32

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def check_args(parameters: Any, args: Any) -> list[str]:
    """Check a call's arguments against the tool's parameter schema.

    Args:
        parameters: the tool's JSON schema (any shape; what is not understood is ignored).
        args: the arguments the model sent.

    Returns:
        One problem per finding, written for the model; empty when the arguments are fine.
    """
    if not isinstance(args, dict):
        return [f"the arguments must be a JSON object, got {_json_type(args)}"]
    problems: list[str] = []
    _check(parameters, args, "", problems, 0)
    if len(problems) > _MAX_PROBLEMS:
        problems[_MAX_PROBLEMS:] = [f"... and {len(problems) - _MAX_PROBLEMS} more problems"]
    return problems


def _json_type(value: Any) -> str:
    """The JSON name of a value's type (`bool` is not a number in JSON)."""
    if isinstance(value, bool):
        return "bool"  # kept as Python names the model has seen in earlier messages
    return type(value).__name__


def _matches_type(value: Any, kind: str) -> bool:
    expected = _PYTHON_TYPES.get(kind)
    if expected is None:
        return True  # a type name we do not know: do not refuse on it
    if isinstance(value, bool) and kind != "boolean":
        return False  # in Python bool is an int subclass; in JSON it is its own type
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()  # JSON has one number type: 3.0 is an integer
    return isinstance(value, expected)


def _name(where: str) -> str:
    return f"argument '{where}'" if where else "the arguments"


def _check(spec: Any, value: Any, where: str, problems: list[str], depth: int) -> None:
    """Append to `problems` what is wrong with `value` at `where` according to `spec`."""
    if not isinstance(spec, dict) or depth > _MAX_DEPTH or len(problems) > _MAX_PROBLEMS:
        return
    kind = spec.get("type")
    kinds = [kind] if isinstance(kind, str) else kind
    if isinstance(kinds, list) and all(isinstance(k, str) for k in kinds) and kinds:
        if spec.get("nullable") is True:
            kinds = [*kinds, "null"]
        if not any(_matches_type(value, k) for k in kinds):
            shown = " or ".join(kinds)
            problems.append(f"{_name(where)} must be {shown}, got {_json_type(value)}")
            return  # the other keywords would only repeat the same finding
    if "enum" in spec and isinstance(spec["enum"], list) and not _one_of(value, spec["enum"]):
        allowed = ", ".join(repr(v) for v in spec["enum"][:20])
        problems.append(f"{_name(where)} must be one of {allowed}; got {value!r:.80}")
    if "const" in spec and not _one_of(value, [spec["const"]]):
        problems.append(f"{_name(where)} must be {spec['const']!r:.80}")
    _check_bounds(spec, value, where, problems)
    if isinstance(value, dict):
        _check_object(spec, value, where, problems, depth)
    elif isinstance(value, list):
        _check_array(spec, value, where, problems, depth)
    _check_combinators(spec, value, where, problems, depth)


def _one_of(value: Any, allowed: list[Any]) -> bool:
    # `True == 1` in Python; compare the JSON type too so that true does not match 1.
    return any(value == a and _json_type(value) == _json_type(a) for a in allowed)


def _number(spec: dict[str, Any], key: str) -> float | None:
    bound = spec.get(key)
    if isinstance(bound, bool) or not isinstance(bound, int | float):
        return None
    return bound


_SIZES: list[tuple[type, str, str, str]] = [
    (str, "minLength", "maxLength", "characters"),
    (list, "minItems", "maxItems", "items"),
    (dict, "minProperties", "maxProperties", "properties"),
]


def _check_bounds(spec: dict[str, Any], value: Any, where: str, problems: list[str]) -> None:
    name = _name(where)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if (low := _number(spec, "minimum")) is not None and value < low:
            problems.append(f"{name} must be >= {low:g}, got {value}")
        if (high := _number(spec, "maximum")) is not None and value > high:
            problems.append(f"{name} must be <= {high:g}, got {value}")
        if (low := _number(spec, "exclusiveMinimum")) is not None and value <= low:
            problems.append(f"{name} must be > {low:g}, got {value}")
        if (high := _number(spec, "exclusiveMaximum")) is not None and value >= high:
            problems.append(f"{name} must be < {high:g}, got {value}")
    for python_type, low_key, high_key, unit in _SIZES:
        if not isinstance(value, python_type):
            continue
        assert isinstance(value, str | list | dict)  # for the type checker: one of _SIZES
        low, high = _number(spec, low_key), _number(spec, high_key)
        if low is not None and len(value) < low:
            empty = python_type is str and low == 1
            problems.append(
                f"{name} must not be empty" if empty else f"{name} needs at least {low:g} {unit}"
            )
        if high is not None and len(value) > high:
            problems.append(f"{name} may have at most {high:g} {unit}, got {len(value)}")


def _check_object(
    spec: dict[str, Any], value: dict[str, Any], where: str, problems: list[str], depth: int
) -> None:
    props = spec.get("properties")
    props = props if isinstance(props, dict) else {}
    required = spec.get("required")
    if isinstance(required, list):
        for name in required:
            if isinstance(name, str) and name not in value:
                problems.append(f"missing required argument '{_join(where, name)}'")
    extra = spec.get("additionalProperties")
    for name, item in value.items():
        if name in props:
            _check(props[name], item, _join(where, name), problems, depth + 1)
        elif extra is False:
            allowed = ", ".join(str(p) for p in props) or "none"
            problems.append(f"unknown argument '{_join(where, name)}' (allowed: {allowed})")
        elif isinstance(extra, dict):
            _check(extra, item, _join(where, name), problems, depth + 1)


def _check_array(
    spec: dict[str, Any], value: list[Any], where: str, problems: list[str], depth: int
) -> None:
    items = spec.get("items")
    prefix = spec.get("prefixItems")
    if isinstance(items, list):  # the older tuple form of `items`
        prefix, items = items, spec.get("additionalItems")
    positional = prefix if isinstance(prefix, list) else []
    for index, item in enumerate(value):
        schema = positional[index] if index < len(positional) else items
        _check(schema, item, f"{where}[{index}]", problems, depth + 1)
        if len(problems) > _MAX_PROBLEMS:
            return


def _check_combinators(
    spec: dict[str, Any], value: Any, where: str, problems: list[str], depth: int
) -> None:
    every = spec.get("allOf")
    for sub in every if isinstance(every, list) else []:
        _check(sub, value, where, problems, depth + 1)
    for key in ("anyOf", "oneOf"):
        # oneOf is checked as anyOf: telling "several matched" apart is not worth refusing a
        # call over, and the tool (or server) still validates what it receives.
        branches = spec.get(key)
        if not isinstance(branches, list) or not branches:
            continue
        findings = []
        for branch in branches:
            found: list[str] = []
            _check(branch, value, where, found, depth + 1)
            if not found:
                break
            findings.append(found[0])
        else:
            shown = " | ".join(findings[:5])
            problems.append(f"{_name(where)} matches none of the allowed forms: {shown}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
