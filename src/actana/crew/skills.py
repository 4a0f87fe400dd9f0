"""Skills (Agent Skills convention): SKILL.md with `name`/`description` front matter, optionally a
multi-file bundle uploaded as an archive. The bundle's content hash is its version."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from actana.api.context import AppContext
from actana.crew.common import StrictModel, ensure_name_free, get_owned, touch
from actana.db.models import AgentSkill, Skill, SkillFile, new_id
from actana.exceptions import ConflictError, InvalidInputError, PayloadTooLargeError
from actana.files.archive import ArchiveLimits, ArchiveMember, ArchiveRejected, read_archive

SKILL_MD = "SKILL.md"
_SKILL_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-))*(?<!-)$")


def _check_skill_name(value: str) -> str:
    if not _SKILL_NAME.match(value):
        raise ValueError("a skill name is lower-case letters, digits and single hyphens")
    return value


SkillName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_skill_name)]


class SkillCreate(StrictModel):
    name: SkillName
    description: str = Field(min_length=1, max_length=1024)
    skill_md: str = Field(min_length=1, max_length=200_000, description="The SKILL.md text")


class SkillUpdate(StrictModel):
    name: SkillName | None = None
    description: str | None = Field(default=None, min_length=1, max_length=1024)
    skill_md: str | None = Field(default=None, min_length=1, max_length=200_000)


class SkillFilePublic(BaseModel):
    path: str
    size: int
    sha256: str
    executable: bool


class SkillPublic(BaseModel):
    id: str
    name: str
    description: str
    skill_md: str
    content_hash: str = Field(description="Version of the skill: changes with any file")
    files: list[SkillFilePublic]
    created_at: datetime
    updated_at: datetime


def parse_front_matter(text: str) -> dict[str, str]:
    """The `key: value` pairs of a SKILL.md front matter block (`---` ... `---`), if any."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    values: dict[str, str] = {}
    for line in lines[1:]:
        if line.strip() == "---":
            return values
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith((" ", "\t")):
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key.strip()] = value
    return {}  # an unterminated block is not front matter


def _content_hash(files: list[tuple[str, str, bool]]) -> str:
    listing = json.dumps(sorted(files), separators=(",", ":"))
    return hashlib.sha256(listing.encode()).hexdigest()


def _single_file_hash(skill_md: str) -> str:
    return _content_hash([(SKILL_MD, hashlib.sha256(skill_md.encode()).hexdigest(), False)])


def to_public(_context: AppContext, _session: Session, row: Skill) -> SkillPublic:
    return SkillPublic(
        id=row.id,
        name=row.name,
        description=row.description,
        skill_md=row.skill_md,
        content_hash=row.content_hash,
        files=[
            SkillFilePublic(path=f.path, size=f.size, sha256=f.sha256, executable=f.executable)
            for f in row.files
        ],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create(
    _context: AppContext, session: Session, workspace_id: str, body: SkillCreate, _actor: str
) -> Skill:
    ensure_name_free(session, Skill, workspace_id, body.name, "skill")
    row = Skill(
        id=new_id("sk"),
        workspace_id=workspace_id,
        name=body.name,
        description=body.description,
        skill_md=body.skill_md,
        content_hash=_single_file_hash(body.skill_md),
    )
    session.add(row)
    return row


def update(
    _context: AppContext,
    session: Session,
    workspace_id: str,
    skill_id: str,
    body: SkillUpdate,
    _actor: str,
) -> Skill:
    row = get_owned(session, Skill, workspace_id, skill_id, "skill")
    if body.name is not None:
        ensure_name_free(session, Skill, workspace_id, body.name, "skill", exclude_id=row.id)
        row.name = body.name
    if body.description is not None:
        row.description = body.description
    if body.skill_md is not None:
        row.skill_md = body.skill_md
        if row.files:
            members = [_member_of(f) for f in row.files if f.path != SKILL_MD]
            members.append(_member(SKILL_MD, body.skill_md.encode(), executable=False))
            _store_files(session, row, members)
        else:
            row.content_hash = _single_file_hash(body.skill_md)
    touch(row)
    return row


def delete(_context: AppContext, session: Session, workspace_id: str, skill_id: str) -> None:
    row = get_owned(session, Skill, workspace_id, skill_id, "skill")
    if session.scalar(select(AgentSkill).where(AgentSkill.skill_id == row.id)):
        raise ConflictError(f"skill {row.name!r} is attached to an agent; detach it first")
    session.delete(row)


def _member(path: str, data: bytes, *, executable: bool) -> ArchiveMember:
    return ArchiveMember(path, data, executable, hashlib.sha256(data).hexdigest())


def _member_of(file: SkillFile) -> ArchiveMember:
    return ArchiveMember(file.path, file.content, file.executable, file.sha256)


def _store_files(session: Session, row: Skill, members: list[ArchiveMember]) -> None:
    row.files = []
    session.flush()
    row.files = [
        SkillFile(
            path=m.path, size=len(m.data), sha256=m.sha256, executable=m.executable, content=m.data
        )
        for m in sorted(members, key=lambda m: m.path)
    ]
    row.content_hash = _content_hash([(m.path, m.sha256, m.executable) for m in members])


def read_bundle(data: bytes, limits: ArchiveLimits) -> tuple[list[ArchiveMember], str]:
    """Validate an uploaded bundle; return its files (rooted at SKILL.md) and SKILL.md's text.

    A bundle zipped as one top-level folder is accepted: the folder prefix is dropped.
    """
    try:
        members = read_archive(data, limits)
    except ArchiveRejected as exc:
        error = PayloadTooLargeError if exc.rule in {"too_large", "ratio"} else InvalidInputError
        raise error(str(exc), field="bundle", rule=exc.rule) from None
    roots = {m.path.split("/", 1)[0] for m in members}
    if len(roots) == 1 and all("/" in m.path for m in members):
        prefix = roots.pop() + "/"
        members = [
            ArchiveMember(m.path[len(prefix) :], m.data, m.executable, m.sha256) for m in members
        ]
    skill_md = next((m for m in members if m.path == SKILL_MD), None)
    if skill_md is None:
        raise InvalidInputError(
            "the bundle has no SKILL.md at its root; put SKILL.md next to the skill's files",
            field="bundle",
        )
    try:
        text = skill_md.data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("SKILL.md must be UTF-8 text", field="bundle") from None
    return members, text


def create_from_bundle(
    session: Session,
    workspace_id: str,
    data: bytes,
    limits: ArchiveLimits,
    *,
    name: str | None,
    description: str | None,
) -> Skill:
    """A skill from an uploaded archive; `name`/`description` default to SKILL.md front matter."""
    members, text = read_bundle(data, limits)
    meta = parse_front_matter(text)
    body = _validated_create(name or meta.get("name"), description or meta.get("description"), text)
    ensure_name_free(session, Skill, workspace_id, body.name, "skill")
    row = Skill(
        id=new_id("sk"),
        workspace_id=workspace_id,
        name=body.name,
        description=body.description,
        skill_md=text,
        content_hash="",
    )
    session.add(row)
    _store_files(session, row, members)
    return row


def replace_bundle(
    session: Session, workspace_id: str, skill_id: str, data: bytes, limits: ArchiveLimits
) -> Skill:
    """Swap a skill's files for a new bundle; name and description stay unless front matter
    in the new SKILL.md changes the description."""
    row = get_owned(session, Skill, workspace_id, skill_id, "skill")
    members, text = read_bundle(data, limits)
    description = parse_front_matter(text).get("description")
    if description:
        row.description = _validated_create(row.name, description, text).description
    row.skill_md = text
    _store_files(session, row, members)
    touch(row)
    return row


def _validated_create(name: str | None, description: str | None, text: str) -> SkillCreate:
    if not name:
        raise InvalidInputError(
            "the skill needs a name: add `name:` to SKILL.md's front matter or send a name field",
            field="name",
        )
    if not description:
        raise InvalidInputError(
            "the skill needs a description: add `description:` to SKILL.md's front matter or "
            "send a description field",
            field="description",
        )
    try:
        return SkillCreate(name=name, description=description, skill_md=text)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInputError(f"{field}: {first['msg']}", field=field) from None
