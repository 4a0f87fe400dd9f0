"""Model endpoint pages: list, create, edit (with a "Test" button), delete.

The API key is write-only here as in the API: the form has a password field that is never
filled in, an empty one keeps the stored key, and a checkbox removes it. The "Test" button is
crew.js calling `POST model-endpoints/{id}/test` with the session cookie.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from actana.crew import model_endpoints as service
from actana.db.models import ModelEndpoint
from actana.web.crew_crud import CrewPages, Values, add_crew_routes
from actana.web.crew_forms import checked, json_field, text
from actana.web.session import WebSession

router = APIRouter()

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


def _form_context(user: WebSession, _session: Session, _values: Values, public: Any) -> Values:
    return {
        "endpoint": public,
        "providers": [(p, p) for p in PROVIDERS],
        "api_base": f"/api/v1/workspaces/{user.workspace_id}",
    }


def _new_values() -> dict[str, Any]:
    values = _values_from_form(FormData())
    values["provider"] = "anthropic"
    return values


PAGES = CrewPages(
    path="/model-endpoints",
    route="endpoint",
    noun="model endpoint",
    model=ModelEndpoint,
    service=service,
    create_schema=service.ModelEndpointCreate,
    update_schema=service.ModelEndpointUpdate,
    fields=frozenset({"name", "provider", "model", "base_url", "api_key", "script"}),
    nav="model_endpoints",
    form_template="crew/endpoint_form.html",
    form_context=_form_context,
    new_values=_new_values,
    read_form=lambda form, _public, _context, _session: _values_from_form(form),
    from_public=_values_from_endpoint,
    body=lambda form, values, creating: _body(form, values, creating=creating),
)
add_crew_routes(router, PAGES)
