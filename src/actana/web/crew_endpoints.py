"""Model endpoint pages: list, create, edit (with a "Test" button), delete.

The API key is write-only here as in the API: the form has a password field that is never
filled in, an empty one keeps the stored key, and a checkbox removes it. The "Test" button is
crew.js calling `POST model-endpoints/{id}/test` with the session cookie.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from actana.api.deps import Context, DbSession
from actana.crew import model_endpoints as service
from actana.crew.common import get_owned, list_owned
from actana.db.models import ModelEndpoint
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
    checked,
    field_errors,
    json_field,
    nearest,
    save,
    text,
)
from actana.web.session import WebSession, WebUser

router = APIRouter()

FIELDS = frozenset({"name", "provider", "model", "base_url", "api_key", "script"})
PROVIDERS: tuple[str, ...] = get_args(service.Provider)


def _values_from_form(form: FormData) -> dict[str, Any]:
    """What the user typed, except the key: a secret is never sent back to the browser."""
    return {
        "name": text(form, "name"),
        "provider": text(form, "provider"),
        "model": text(form, "model"),
        "base_url": text(form, "base_url"),
        "script": text(form, "script", strip=False),
        "remove_api_key": checked(form, "remove_api_key"),
    }


def _values_from_endpoint(endpoint: service.ModelEndpointPublic) -> dict[str, Any]:
    return {
        "name": endpoint.name,
        "provider": endpoint.provider,
        "model": endpoint.model,
        "base_url": endpoint.base_url or "",
        "script": json.dumps(endpoint.script, indent=2) if endpoint.script is not None else "",
        "remove_api_key": False,
    }


def _body(form: FormData, values: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": values["name"],
        "provider": values["provider"],
        "model": values["model"],
        "base_url": values["base_url"] or None,
        "script": json_field(form, "script"),
    }
    typed_key = text(form, "api_key")
    if typed_key:
        body["api_key"] = typed_key
    elif values["remove_api_key"] and not creating:
        body["api_key"] = None  # PATCH semantics: null removes the stored key
    return body


def _errors(exc: Exception) -> FieldErrors:
    return field_errors(exc, lambda path: nearest(path, FIELDS))


def _form_page(
    request: Request,
    user: WebSession,
    values: dict[str, Any],
    *,
    endpoint: service.ModelEndpointPublic | None = None,
    errors: FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        user,
        "crew/endpoint_form.html",
        errors=errors,
        status_code=status_code,
        values=values,
        endpoint=endpoint,
        providers=[(p, p) for p in PROVIDERS],
        api_base=f"/api/v1/workspaces/{user.workspace_id}",
        nav="model_endpoints",
    )


def _public(context: Context, session: DbSession, user: WebSession, endpoint_id: str) -> Any:
    row = get_owned(session, ModelEndpoint, user.workspace_id, endpoint_id, "model endpoint")
    return service.to_public(context, session, row)


@router.get("/model-endpoints", name="ui_endpoints")
def list_endpoints(
    request: Request, user: WebUser, context: Context, session: DbSession
) -> Response:
    offset = page_offset(request)
    rows, total = list_owned(
        session, ModelEndpoint, user.workspace_id, limit=PAGE_SIZE, offset=offset
    )
    return render(
        request,
        user,
        "crew/endpoints.html",
        endpoints=[service.to_public(context, session, row) for row in rows],
        pager=pager(offset, total),
        nav="model_endpoints",
    )


@router.get("/model-endpoints/new", name="ui_endpoint_new")
def new_endpoint(request: Request, user: WebUser) -> Response:
    values = _values_from_form(FormData())
    values["provider"] = "anthropic"
    return _form_page(request, user, values)


@router.post("/model-endpoints", name="ui_endpoint_create")
def create_endpoint(
    request: Request, user: WebUser, form: PostedForm, context: Context
) -> Response:
    values = _values_from_form(checked_form(user, form))
    try:
        body = service.ModelEndpointCreate.model_validate(_body(form, values, creating=True))
        row = save(
            context, lambda s: service.create(context, s, user.workspace_id, body, actor(user))
        )
    except SAVE_ERRORS as exc:
        return _form_page(request, user, values, errors=_errors(exc))
    return redirect(f"/model-endpoints/{row.id}", "Model endpoint created.")


@router.get("/model-endpoints/{endpoint_id}", name="ui_endpoint")
def show_endpoint(
    endpoint_id: str, request: Request, user: WebUser, context: Context, session: DbSession
) -> Response:
    endpoint = _public(context, session, user, endpoint_id)
    return _form_page(request, user, _values_from_endpoint(endpoint), endpoint=endpoint)


@router.post("/model-endpoints/{endpoint_id}", name="ui_endpoint_update")
def update_endpoint(
    endpoint_id: str,
    request: Request,
    user: WebUser,
    form: PostedForm,
    context: Context,
    session: DbSession,
) -> Response:
    checked_form(user, form)
    endpoint = _public(context, session, user, endpoint_id)
    values = _values_from_form(form)
    try:
        body = service.ModelEndpointUpdate.model_validate(_body(form, values, creating=False))
        save(
            context,
            lambda s: service.update(context, s, user.workspace_id, endpoint_id, body, actor(user)),
        )
    except SAVE_ERRORS as exc:
        return _form_page(request, user, values, endpoint=endpoint, errors=_errors(exc))
    return redirect(f"/model-endpoints/{endpoint_id}", "Model endpoint saved.")


@router.post("/model-endpoints/{endpoint_id}/delete", name="ui_endpoint_delete")
def delete_endpoint(
    endpoint_id: str,
    request: Request,
    user: WebUser,
    form: PostedForm,
    context: Context,
    session: DbSession,
) -> Response:
    checked_form(user, form)
    try:
        save(context, lambda s: service.delete(context, s, user.workspace_id, endpoint_id))
    except ConflictError as exc:  # still used by an agent: say so on its page
        endpoint = _public(context, session, user, endpoint_id)
        values = _values_from_endpoint(endpoint)
        errors = {FORM: exc.message}
        return _form_page(request, user, values, endpoint=endpoint, errors=errors, status_code=409)
    return redirect("/model-endpoints", "Model endpoint deleted.")
