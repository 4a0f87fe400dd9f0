"""Building the protocol's dataclasses from parsed JSON, checking every field's type.

The server validates with pydantic; inside the sandbox that costs too much start-up, and the
shapes are simple: str, int, bool, None, lists, str-keyed dicts, Literals, nested dataclasses and
unions of those. Reading the field types from the dataclasses themselves keeps this in step with
`actana.protocol` without a second copy of the schema. Unknown keys are ignored, so that a newer
server can add fields without breaking an older runtime.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")

_SCALARS: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
}


class DecodeError(ValueError):
    """The JSON does not have the expected shape; the message names the field at fault."""


@cache
def _hints(cls: type) -> dict[str, Any]:
    # The protocol modules use `from __future__ import annotations`: the hints are strings until
    # resolved here, once per class.
    return typing.get_type_hints(cls)


def decode(cls: type[T], value: Any, where: str = "") -> T:
    """Build dataclass `cls` from a JSON value.

    Args:
        cls: a dataclass of `actana.protocol`.
        value: what `json.loads` returned.
        where: the path of `value` in the whole document, for error messages.

    Returns:
        The instance.

    Raises:
        DecodeError: a field is missing or has the wrong type.
    """
    result = _convert(cls, value, where or cls.__name__)
    return typing.cast(T, result)


def _dataclass(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise DecodeError(f"{where}: expected an object, got {_kind(value)}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in value:
            kwargs[field.name] = _convert(
                hints[field.name], value[field.name], f"{where}.{field.name}"
            )
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise DecodeError(f"{where}.{field.name}: missing")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str) -> Any:  # noqa: C901 - one branch per kind of type
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass(tp, value, where)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        errors = []
        for option in typing.get_args(tp):
            try:
                return _convert(option, value, where)
            except DecodeError as exc:
                errors.append(str(exc))
        raise DecodeError(errors[0])  # the first option is the informative one in `X | None`
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise DecodeError(
                f"{where}: expected one of {list(typing.get_args(tp))}, got {value!r}"
            )
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise DecodeError(f"{where}: expected a list, got {_kind(value)}")
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(tp)
        if not isinstance(value, dict):
            raise DecodeError(f"{where}: expected an object, got {_kind(value)}")
        return {str(k): _convert(item, v, f"{where}.{k}") for k, v in value.items()}
    if tp is type(None):
        if value is not None:
            raise DecodeError(f"{where}: expected null, got {_kind(value)}")
        return None
    if tp in _SCALARS:
        # bool is an int in Python but not in JSON; an int is fine where a float is expected.
        ok = isinstance(value, tp) and not (tp is not bool and isinstance(value, bool))
        ok = ok or (tp is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            raise DecodeError(f"{where}: expected {_SCALARS[tp]}, got {_kind(value)}")
        return value
    raise DecodeError(f"{where}: cannot decode type {tp!r}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
