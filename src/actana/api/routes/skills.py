"""`/skills`: CRUD, plus bundle upload (`POST /skills/upload`, `PUT /skills/{id}/bundle`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import File, Form, Request, UploadFile

from actana.api.deps import Context, CurrentCaller, DbSession
from actana.api.routes.crud import crud_router
from actana.crew import skills as service
from actana.db.models import Skill
from actana.exceptions import PayloadTooLargeError
from actana.files.archive import ArchiveLimits
from actana.settings import Settings

router = crud_router(
    prefix="/skills",
    label="skill",
    model=Skill,
    service=service,
    create_schema=service.SkillCreate,
    update_schema=service.SkillUpdate,
    public_schema=service.SkillPublic,
)

_CHUNK = 1 << 16


def _limits(settings: Settings) -> ArchiveLimits:
    return ArchiveLimits(
        max_entries=settings.skill_bundle_max_entries,
        max_total_bytes=settings.skill_bundle_max_bytes,
        max_file_bytes=settings.skill_bundle_max_bytes,
    )


def _read_capped(request: Request, upload: UploadFile, cap: int) -> bytes:
    declared = request.headers.get("content-length", "")
    too_big = PayloadTooLargeError(
        f"the bundle is larger than {cap} bytes; make it smaller", field="bundle"
    )
    # Refuse early when the client tells us the size; otherwise count while reading. (Routes
    # are sync so the blocking database work runs in the thread pool, off the event loop.)
    if declared.isdigit() and int(declared) > cap + _CHUNK:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    while chunk := upload.file.read(_CHUNK):
        size += len(chunk)
        if size > cap:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/upload", status_code=201, response_model=service.SkillPublic)
def upload_skill(
    request: Request,
    bundle: Annotated[UploadFile, File(description="zip or tar(.gz) with SKILL.md at its root")],
    context: Context,
    session: DbSession,
    caller: CurrentCaller,
    name: Annotated[str | None, Form()] = None,
    description: Annotated[str | None, Form()] = None,
) -> service.SkillPublic:
    """Create a skill from a bundle; name and description default to SKILL.md's front matter."""
    data = _read_capped(request, bundle, context.settings.skill_bundle_max_bytes)
    row = service.create_from_bundle(
        session,
        caller.workspace_id,
        data,
        _limits(context.settings),
        name=name,
        description=description,
    )
    session.flush()
    return service.to_public(context, session, row)


@router.put("/{item_id}/bundle", response_model=service.SkillPublic)
def replace_bundle(
    item_id: str,
    request: Request,
    bundle: Annotated[UploadFile, File()],
    context: Context,
    session: DbSession,
    caller: CurrentCaller,
) -> service.SkillPublic:
    """Replace a skill's files with a new bundle (its content hash changes)."""
    data = _read_capped(request, bundle, context.settings.skill_bundle_max_bytes)
    row = service.replace_bundle(
        session, caller.workspace_id, item_id, data, _limits(context.settings)
    )
    session.flush()
    return service.to_public(context, session, row)
