"""Between HTML forms and the crew services: flat string fields in, per-field messages out.

The crew pages validate nothing themselves. A form post is turned into the same dict a JSON
client would send, validated by the service's own pydantic model and saved by the service's own
`create`/`update`, so a rule lives in one place (`actana.crew`). This module only translates:
form fields to typed values, and an error's dotted path (a pydantic `loc`, an
`InvalidInputError.field`) back to the form field that shows the message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from actana.api.context import AppContext
from actana.exceptions import ConflictError, InvalidInputError

T = TypeVar("T")

FORM = "form"
"""The slot for a message about the form as a whole (shown above it)."""

FieldErrors = dict[str, str]


class FormInvalid(Exception):
    """A field the form itself could not read (bad JSON, a `KEY=value` line without `=`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


SAVE_ERRORS = (ValidationError, InvalidInputError, ConflictError, FormInvalid)
"""What a save can fail with that is the user's to fix, shown on the form rather than raised."""


# --- Reading fields ---------------------------------------------------------------------------


def text(form: FormData, name: str, *, strip: bool = True) -> str:
    """A text field ('' when absent); single-line fields are stripped, text areas are not."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    # Browsers send text areas with CRLF line ends; scripts and prompts want LF.
    value = value.replace("\r\n", "\n")
    return value.strip() if strip else value


def optional(form: FormData, name: str) -> str | None:
    """A text field, None when left empty (an unset number, no environment)."""
    return text(form, name) or None


def checked(form: FormData, name: str) -> bool:
    return name in form


def chosen(form: FormData, name: str) -> list[str]:
    """The values of a checkbox group, in the order the page lists them."""
    return [v for v in form.getlist(name) if isinstance(v, str) and v]


def lines(form: FormData, name: str) -> list[str]:
    """A text area read as one item per non-blank line."""
    return [line.strip() for line in text(form, name, strip=False).split("\n") if line.strip()]


def pairs(form: FormData, name: str) -> dict[str, str]:
    """A text area of `KEY=value` lines (the value may contain '=')."""
    result: dict[str, str] = {}
    for number, line in enumerate(lines(form, name), start=1):
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise FormInvalid(name, f"line {number} is not KEY=value: {line!r}")
        result[key.strip()] = value.strip()
    return result


def json_field(form: FormData, name: str) -> Any:
    """A text area holding JSON; None when empty."""
    raw = text(form, name, strip=False)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FormInvalid(name, f"not valid JSON: {exc.msg} (line {exc.lineno})") from None


def rows(form: FormData, prefix: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Repeated rows named `prefix.N.column`, in row order: (N, {column: value})."""
    found: dict[int, dict[str, str]] = {}
    for key, value in form.multi_items():
        head, _, rest = key.partition(".")
        number, _, column = rest.partition(".")
        if head == prefix and number.isdigit() and column and isinstance(value, str):
            found.setdefault(int(number), {})[column] = value.replace("\r\n", "\n")
    for index in sorted(found):
        yield index, found[index]


def upload(form: FormData, name: str) -> UploadFile | None:
    """An uploaded file, None when the file input was left empty."""
    value = form.get(name)
    if isinstance(value, UploadFile) and value.filename:
        return value
    return None


# --- Saving and errors ------------------------------------------------------------------------


def save(context: AppContext, work: Callable[[Session], T]) -> T:
    """Run `work` in a session of its own that commits only if it returns.

    Not the request's session: a service may change a row before it finds a later field at
    fault, and a form shown again with an error must leave nothing half-saved behind.
    """
    with context.database.session() as session:
        result = work(session)
        session.flush()
        return result


def nearest(path: str, known: Collection[str]) -> str:
    """The most specific known form field on `path` (`variables.2.value` -> `variables` when
    the rows have no slot of their own); the whole form when none."""
    parts = path.split(".") if path else []
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return FORM


def field_errors(
    exc: Exception, resolve: Callable[[str], str], *, conflict_field: str = "name"
) -> FieldErrors:
    """Messages keyed by the form field at fault.

    `resolve` maps a service's dotted path to a form field (see `nearest`). A conflict on save
    is always a taken name (`ensure_name_free`), so it goes next to `conflict_field`.
    """
    errors: FieldErrors = {}
    if isinstance(exc, ValidationError):
        for error in exc.errors():
            path = ".".join(str(part) for part in error["loc"])
            errors.setdefault(resolve(path), _pydantic_message(error["msg"]))
    elif isinstance(exc, InvalidInputError):
        errors[resolve(exc.field or "")] = exc.message
    elif isinstance(exc, FormInvalid):
        errors[resolve(exc.field)] = exc.message
    elif isinstance(exc, ConflictError):
        errors[conflict_field] = exc.message
    else:  # pragma: no cover - callers catch SAVE_ERRORS only
        raise exc
    return errors


def _pydantic_message(message: str) -> str:
    # "Value error, use letters..." reads as noise on a form; keep what the rule says.
    return message.removeprefix("Value error, ")
