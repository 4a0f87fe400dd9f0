"""Environment pages: variables (secret values write-only), setup script, network policy.

Variables are repeated form rows `variables.N.name|value|secret`. Blank rows are skipped, so
the service sees a shorter list than the form has rows: errors it reports for list index i are
moved back to the row they came from. A secret row sent without a value keeps its stored value
(the API's rule); a secret value is never put back into the page.
"""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from actana.api.deps import Context, DbSession
from actana.crew import environments as service
from actana.crew.common import get_owned, list_owned
from actana.db.models import Environment
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
    field_errors,
    lines,
    nearest,
    rows,
    save,
    text,
)
from actana.web.session import WebSession, WebUser

router = APIRouter()

FIELDS = frozenset({"name", "variables", "setup_script", "network_policy", "allowed_domains"})
POLICIES: tuple[str, ...] = get_args(service.NetworkPolicy)
BLANK_ROWS = 2
"""Empty variable rows offered below the filled ones (crew.js adds more on demand)."""


def _rows_from_form(form: FormData, stored: set[str]) -> list[dict[str, Any]]:
    """The variable rows as typed (row number kept), secret values dropped."""
    found = []
    for index, row in rows(form, "variables"):
        name = row.get("name", "").strip()
        secret = "secret" in row
        found.append(
            {
                "row": index,
                "name": name,
                "value": "" if secret else row.get("value", ""),
                "typed": row.get("value", ""),
                "secret": secret,
                "stored": secret and name in stored,
            }
        )
    return found


def _values_from_form(form: FormData, stored: set[str]) -> dict[str, Any]:
    return {
        "name": text(form, "name"),
        "variables": _rows_from_form(form, stored),
        "setup_script": text(form, "setup_script", strip=False),
        "network_policy": text(form, "network_policy"),
        "allowed_domains": "\n".join(lines(form, "allowed_domains")),
    }


def _values_from_environment(environment: service.EnvironmentPublic) -> dict[str, Any]:
    variables = [
        {
            "row": i,
            "name": v.name,
            "value": v.value or "",
            "typed": "",
            "secret": v.secret,
            "stored": v.secret and v.value_set,
        }
        for i, v in enumerate(environment.variables)
    ]
    return {
        "name": environment.name,
        "variables": variables,
        "setup_script": environment.setup_script,
        "network_policy": environment.network_policy,
        "allowed_domains": "\n".join(environment.allowed_domains),
    }


def _body(values: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
    """The API body, and for each variable sent the form row it came from."""
    variables: list[dict[str, Any]] = []
    origin: list[int] = []
    for row in values["variables"]:
        if not row["name"] and not row["typed"]:
            continue  # an unused blank row
        # An empty secret means "keep the stored value"; an empty plain value is a value.
        value = row["typed"] if row["typed"] or not row["secret"] else None
        variables.append({"name": row["name"], "value": value, "secret": row["secret"]})
        origin.append(row["row"])
    body = {
        "name": values["name"],
        "variables": variables,
        "setup_script": values["setup_script"],
        "network_policy": values["network_policy"],
        "allowed_domains": values["allowed_domains"].split("\n")
        if values["allowed_domains"]
        else [],
    }
    return body, origin


def _resolver(origin: list[int]) -> Any:
    """Map `variables.<list index>.<column>` to the form row's own field."""

    def resolve(path: str) -> str:
        head, _, rest = path.partition(".")
        if head == "variables":
            index, _, column = rest.partition(".")
            if index.isdigit() and int(index) < len(origin):
                row = origin[int(index)]
                return f"variables.{row}.{column if column in ('name', 'value') else 'name'}"
        return nearest(path, FIELDS)

    return resolve


def _form_page(
    request: Request,
    user: WebSession,
    values: dict[str, Any],
    *,
    environment_id: str | None = None,
    errors: FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    start = max((row["row"] for row in values["variables"]), default=-1) + 1
    blanks = [
        {"row": start + i, "name": "", "value": "", "secret": False, "stored": False}
        for i in range(BLANK_ROWS)
    ]
    return render(
        request,
        user,
        "crew/environment_form.html",
        errors=errors,
        status_code=status_code,
        values=values,
        rows=values["variables"] + blanks,
        environment_id=environment_id,
        policies=[(p, p) for p in POLICIES],
        nav="environments",
    )


def _stored_secrets(context: Context, session: DbSession, environment_id: str | None) -> set[str]:
    if environment_id is None:
        return set()
    names = context.secrets.names(session, service.OWNER_KIND, environment_id)
    return {name.removeprefix("var:") for name in names}


def _public(context: Context, session: DbSession, user: WebSession, environment_id: str) -> Any:
    row = get_owned(session, Environment, user.workspace_id, environment_id, "environment")
    return service.to_public(context, session, row)


@router.get("/environments", name="ui_environments")
def list_environments(
    request: Request, user: WebUser, context: Context, session: DbSession
) -> Response:
    offset = page_offset(request)
    found, total = list_owned(
        session, Environment, user.workspace_id, limit=PAGE_SIZE, offset=offset
    )
    return render(
        request,
        user,
        "crew/environments.html",
        environments=[service.to_public(context, session, row) for row in found],
        pager=pager(offset, total),
        nav="environments",
    )


@router.get("/environments/new", name="ui_environment_new")
def new_environment(request: Request, user: WebUser) -> Response:
    values = _values_from_form(FormData(), set())
    values["network_policy"] = "none"
    return _form_page(request, user, values)


@router.post("/environments", name="ui_environment_create")
def create_environment(
    request: Request, user: WebUser, form: PostedForm, context: Context
) -> Response:
    values = _values_from_form(checked_form(user, form), set())
    body, origin = _body(values)
    try:
        parsed = service.EnvironmentCreate.model_validate(body)
        row = save(
            context, lambda s: service.create(context, s, user.workspace_id, parsed, actor(user))
        )
    except SAVE_ERRORS as exc:
        return _form_page(request, user, values, errors=field_errors(exc, _resolver(origin)))
    return redirect(f"/environments/{row.id}", "Environment created.")


@router.get("/environments/{environment_id}", name="ui_environment")
def show_environment(
    environment_id: str, request: Request, user: WebUser, context: Context, session: DbSession
) -> Response:
    environment = _public(context, session, user, environment_id)
    values = _values_from_environment(environment)
    return _form_page(request, user, values, environment_id=environment.id)


@router.post("/environments/{environment_id}", name="ui_environment_update")
def update_environment(
    environment_id: str,
    request: Request,
    user: WebUser,
    form: PostedForm,
    context: Context,
    session: DbSession,
) -> Response:
    checked_form(user, form)
    _public(context, session, user, environment_id)  # 404 before anything else
    values = _values_from_form(form, _stored_secrets(context, session, environment_id))
    body, origin = _body(values)
    try:
        parsed = service.EnvironmentUpdate.model_validate(body)
        save(
            context,
            lambda s: service.update(
                context, s, user.workspace_id, environment_id, parsed, actor(user)
            ),
        )
    except SAVE_ERRORS as exc:
        errors = field_errors(exc, _resolver(origin))
        return _form_page(request, user, values, environment_id=environment_id, errors=errors)
    return redirect(f"/environments/{environment_id}", "Environment saved.")


@router.post("/environments/{environment_id}/delete", name="ui_environment_delete")
def delete_environment(
    environment_id: str,
    request: Request,
    user: WebUser,
    form: PostedForm,
    context: Context,
    session: DbSession,
) -> Response:
    checked_form(user, form)
    try:
        save(context, lambda s: service.delete(context, s, user.workspace_id, environment_id))
    except ConflictError as exc:  # still used by an agent: say so on its page
        values = _values_from_environment(_public(context, session, user, environment_id))
        return _form_page(
            request,
            user,
            values,
            environment_id=environment_id,
            errors={FORM: exc.message},
            status_code=409,
        )
    return redirect("/environments", "Environment deleted.")
