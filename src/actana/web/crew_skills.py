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
from starlette.datastructures import FormData

from actana.api.deps import Context, DbSession
from actana.api.routes.skills import _limits, _read_capped
from actana.crew import skills as service
from actana.crew.common import get_owned, list_owned
from actana.db.models import Skill
from actana.exceptions import ConflictError
from actana.web.crew_common import (
    PAGE_SIZE,
    PostedForm,
    actor,
    checked_form,
    page_offset,
    pager,
    redirect,
    render,
)
from actana.web.crew_forms import (
    FORM,
    SAVE_ERRORS,
    FieldErrors,
    FormInvalid,
    field_errors,
    nearest,
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


def _text_errors(exc: Exception) -> FieldErrors:
    return field_errors(exc, lambda path: nearest(path, FIELDS))


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


def _new_page(
    request: Request, user: WebSession, values: dict[str, Any], errors: FieldErrors | None = None
) -> Response:
    return render(request, user, "crew/skill_new.html", errors=errors, values=values, nav="skills")


def _detail_page(
    request: Request,
    user: WebSession,
    skill: service.SkillPublic,
    values: dict[str, Any],
    *,
    errors: FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        user,
        "crew/skill_detail.html",
        errors=errors,
        status_code=status_code,
        skill=skill,
        values=values,
        nav="skills",
    )


def _public(context: Context, session: DbSession, user: WebSession, skill_id: str) -> Any:
    row = get_owned(session, Skill, user.workspace_id, skill_id, "skill")
    return service.to_public(context, session, row)


@router.get("/skills", name="ui_skills")
def list_skills(request: Request, user: WebUser, context: Context, session: DbSession) -> Response:
    offset = page_offset(request)
    found, total = list_owned(session, Skill, user.workspace_id, limit=PAGE_SIZE, offset=offset)
    return render(
        request,
        user,
        "crew/skills.html",
        skills=[service.to_public(context, session, row) for row in found],
        pager=pager(offset, total),
        nav="skills",
    )


@router.get("/skills/new", name="ui_skill_new")
def new_skill(request: Request, user: WebUser) -> Response:
    return _new_page(request, user, _values_from_form(FormData()))


@router.post("/skills", name="ui_skill_create")
def create_skill(request: Request, user: WebUser, form: PostedForm, context: Context) -> Response:
    values = _values_from_form(checked_form(user, form))
    body = {k: values[k] for k in FIELDS}
    try:
        parsed = service.SkillCreate.model_validate(body)
        row = save(
            context, lambda s: service.create(context, s, user.workspace_id, parsed, actor(user))
        )
    except SAVE_ERRORS as exc:
        return _new_page(request, user, values, _text_errors(exc))
    return redirect(f"/skills/{row.id}", "Skill created.")


@router.post("/skills/upload", name="ui_skill_upload")
def upload_skill(request: Request, user: WebUser, form: PostedForm, context: Context) -> Response:
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
        return _new_page(request, user, values, _upload_errors(exc))
    return redirect(f"/skills/{row.id}", "Skill uploaded.")


@router.get("/skills/{skill_id}", name="ui_skill")
def show_skill(
    skill_id: str, request: Request, user: WebUser, context: Context, session: DbSession
) -> Response:
    skill = _public(context, session, user, skill_id)
    return _detail_page(request, user, skill, _values_from_skill(skill))


@router.post("/skills/{skill_id}", name="ui_skill_update")
def update_skill(
    skill_id: str,
    request: Request,
    user: WebUser,
    form: PostedForm,
    context: Context,
    session: DbSession,
) -> Response:
    checked_form(user, form)
    skill = _public(context, session, user, skill_id)
    values = _values_from_form(form)
    try:
        parsed = service.SkillUpdate.model_validate({k: values[k] for k in FIELDS})
        save(
            context,
            lambda s: service.update(context, s, user.workspace_id, skill_id, parsed, actor(user)),
        )
    except SAVE_ERRORS as exc:
        return _detail_page(request, user, skill, values, errors=_text_errors(exc))
    return redirect(f"/skills/{skill_id}", "Skill saved.")


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
    skill = _public(context, session, user, skill_id)
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
        return _detail_page(request, user, skill, _values_from_skill(skill), errors=errors)
    return redirect(f"/skills/{skill_id}", "Bundle replaced.")


@router.post("/skills/{skill_id}/delete", name="ui_skill_delete")
def delete_skill(
    skill_id: str,
    request: Request,
    user: WebUser,
    form: PostedForm,
    context: Context,
    session: DbSession,
) -> Response:
    checked_form(user, form)
    try:
        save(context, lambda s: service.delete(context, s, user.workspace_id, skill_id))
    except ConflictError as exc:  # attached to an agent: say so on its page
        skill = _public(context, session, user, skill_id)
        values = _values_from_skill(skill)
        errors = {FORM: exc.message}
        return _detail_page(request, user, skill, values, errors=errors, status_code=409)
    return redirect("/skills", "Skill deleted.")
