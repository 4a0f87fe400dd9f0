"""Helpers every crew service uses: scoped lookups, unique names, shared field types."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from actana.db.models import Base, utcnow
from actana.exceptions import ConflictError, InvalidInputError, NotFoundError

M = TypeVar("M", bound=Base)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("use letters, digits, '.', '_' and '-', starting with a letter or digit")
    return value


Name = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_name)]
"""A crew object's name: unique in its workspace, safe in URLs, file names and tool names."""


class StrictModel(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid")


def get_owned(session: Session, model: type[M], workspace_id: str, object_id: str, label: str) -> M:
    """The row `object_id` of `model` if it belongs to the workspace, else a 404."""
    row = session.get(model, object_id)
    if row is None or getattr(row, "workspace_id", None) != workspace_id:
        raise NotFoundError(f"no {label} {object_id!r} in this workspace")
    return row


def ensure_name_free(
    session: Session,
    model: type[Base],
    workspace_id: str,
    name: str,
    label: str,
    *,
    exclude_id: str | None = None,
) -> None:
    """Raise 409 when another object of the same kind already has `name` in the workspace."""
    column: Any = model
    statement = select(func.count()).where(column.workspace_id == workspace_id, column.name == name)
    if exclude_id is not None:
        statement = statement.where(column.id != exclude_id)
    if session.scalar(statement):
        raise ConflictError(f"a {label} named {name!r} already exists in this workspace")


def list_owned(
    session: Session, model: type[M], workspace_id: str, *, limit: int, offset: int
) -> tuple[list[M], int]:
    """A page of the workspace's objects of one kind, by name, and the total count."""
    column: Any = model
    total = session.scalar(select(func.count()).where(column.workspace_id == workspace_id)) or 0
    rows = session.scalars(
        select(model)
        .where(column.workspace_id == workspace_id)
        .order_by(column.name)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


def touch(row: Any) -> None:
    """Mark a row as updated now."""
    row.updated_at = utcnow()


def check_http_url(url: str, field: str) -> None:
    """Refuse anything but an http(s) URL with a host and no embedded credentials."""
    match = re.match(r"^(https?)://([^/?#\s]+)[^\s]*$", url)
    if match is None:
        raise InvalidInputError(f"{field} must be an http:// or https:// URL", field=field)
    if "@" in match.group(2):
        raise InvalidInputError(
            f"{field} must not carry credentials; store them as secrets instead", field=field
        )
