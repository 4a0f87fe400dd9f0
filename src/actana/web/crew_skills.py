"""Skill pages: list, create from SKILL.md text or from an uploaded bundle, a detail page with
the bundle's files and hashes, edit, replace the bundle, delete.

Uploads go through the very functions the API uses (`actana.crew.skills.create_from_bundle`,
`replace_bundle`, and the API route's size cap and archive limits), so a hostile archive is
refused here exactly as it is over the API, with the message next to the file input.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from actana.api.deps import Context, DbSession
from actana.api.routes.skills import _limits, _read_capped
from actana.crew import skills as service
from actana.db.models import Skill
from actana.web.crew_common import PostedForm, checked_form, redirect
from actana.web.crew_crud import CrewPages, Values, add_crew_routes
from actana.web.crew_forms import (
    SAVE_ERRORS,
    FieldErrors,
    FormInvalid,
    field_errors,
    save,
    text,
    upload,
)
from actana.web.session import WebSession, WebUser

router = APIRouter()

FIELDS = frozenset({"name", "description", "skill_md"})
# The upload form shares the page with the text form, so its fields have names of their own.
UPLOAD_FIELDS = {"name": "bundle_name", "description": "bundle_description", "bundle": "bundle"}


def _values_from_form(form: FormData) -> dict[str, Any]:
    return {
        "name": text(form, "name"),
        "description": text(form, "description"),
        "skill_md": text(form, "skill_md", strip=False),
        "bundle_name": text(form, "bundle_name"),
        "bundle_description": text(form, "bundle_description"),
    }


def _values_from_skill(skill: service.SkillPublic) -> dict[str, Any]:
    values = _values_from_form(FormData())
    values.update(name=skill.name, description=skill.description, skill_md=skill.skill_md)
    return values


def _upload_errors(exc: Exception) -> FieldErrors:
    def resolve(path: str) -> str:
        return UPLOAD_FIELDS.get(path.split(".")[0], "bundle")

    return field_errors(exc, resolve, conflict_field=UPLOAD_FIELDS["name"])


def _bundle_bytes(request: Request, context: Context, form: FormData, field: str) -> bytes:
    file = upload(form, field)
    if file is None:
        raise FormInvalid(field, "choose a .zip or .tar.gz file with SKILL.md at its root")
    # The API route's reader: the same size cap, counted while reading.
    return _read_capped(request, cast(UploadFile, file), context.settings.skill_bundle_max_bytes)


def _form_context(_user: WebSession, _session: Session, _values: Values, public: Any) -> Values:
    # A new skill has a page of its own (SKILL.md text, or a bundle upload).
    return {"skill": public}


PAGES = CrewPages(
    path="/skills",
    route="skill",
    noun="skill",
    model=Skill,
    service=service,
    create_schema=service.SkillCreate,
    update_schema=service.SkillUpdate,
    fields=FIELDS,
    nav="skills",
    form_template="crew/skill_detail.html",
    form_context=_form_context,
    new_template="crew/skill_new.html",
    new_values=lambda: _values_from_form(FormData()),
    read_form=lambda form, _public, _context, _session: _values_from_form(form),
    from_public=_values_from_skill,
    body=lambda _form, values, _creating: {k: values[k] for k in FIELDS},
)


@router.post("/skills/upload", name="ui_skill_upload")
def upload_skill(
    request: Request, user: WebUser, form: PostedForm, context: Context, session: DbSession
) -> Response:
    values = _values_from_form(checked_form(user, form))
    try:
        data = _bundle_bytes(request, context, form, "bundle")
        row = save(
            context,
            lambda s: service.create_from_bundle(
                s,
                user.workspace_id,
                data,
                _limits(context.settings),
                name=values["bundle_name"] or None,
                description=values["bundle_description"] or None,
            ),
        )
    except SAVE_ERRORS as exc:
        return PAGES.form_page(request, user, session, values, errors=_upload_errors(exc))
    return redirect(f"/skills/{row.id}", "Skill uploaded.")


@router.post("/skills/{skill_id}/bundle", name="ui_skill_bundle")
def replace_bundle(
    skill_id: str,
    request: Request,
    user: WebUser,
    form: PostedForm,
    context: Context,
    session: DbSession,
) -> Response:
    checked_form(user, form)
    skill = PAGES.public(context, session, user, skill_id)
    try:
        data = _bundle_bytes(request, context, form, "replace_bundle")
        save(
            context,
            lambda s: service.replace_bundle(
                s, user.workspace_id, skill_id, data, _limits(context.settings)
            ),
        )
    except SAVE_ERRORS as exc:
        # Whatever is wrong (the archive, or SKILL.md's front matter) is wrong with the file.
        errors = field_errors(exc, lambda _path: "replace_bundle")
        values = _values_from_skill(skill)
        return PAGES.form_page(request, user, session, values, skill, errors=errors)
    return redirect(f"/skills/{skill_id}", "Bundle replaced.")


# After `POST /skills/upload`, which `POST /skills/{id}` would otherwise take for an update.
add_crew_routes(router, PAGES)
