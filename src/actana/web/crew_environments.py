"""Environment pages: variables (secret values write-only), setup script, network policy.

Variables are repeated form rows `variables.N.name|value|secret`. Blank rows are skipped, so
the service sees a shorter list than the form has rows: errors it reports for list index i are
moved back to the row they came from. A secret row sent without a value keeps its stored value
(the API's rule); a secret value is never put back into the page.
"""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from actana.api.context import AppContext
from actana.crew import environments as service
from actana.db.models import Environment
from actana.web.crew_crud import CrewPages, Values, add_crew_routes
from actana.web.crew_forms import FieldErrors, field_errors, lines, nearest, rows, text
from actana.web.session import WebSession

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


def _form_context(_user: WebSession, _session: Session, values: Values, public: Any) -> Values:
    """The variable rows, with blank ones to fill in below them."""
    start = max((row["row"] for row in values["variables"]), default=-1) + 1
    blanks = [
        {"row": start + i, "name": "", "value": "", "secret": False, "stored": False}
        for i in range(BLANK_ROWS)
    ]
    return {
        "rows": values["variables"] + blanks,
        "environment_id": public.id if public is not None else None,
        "policies": [(p, p) for p in POLICIES],
    }


def _read_form(
    form: FormData, public: Any, context: AppContext, session: Session
) -> dict[str, Any]:
    """The typed values; on edit, which secret rows have a stored value to keep."""
    stored: set[str] = set()
    if public is not None:
        names = context.secrets.names(session, service.OWNER_KIND, public.id)
        stored = {name.removeprefix("var:") for name in names}
    return _values_from_form(form, stored)


def _new_values() -> dict[str, Any]:
    values = _values_from_form(FormData(), set())
    values["network_policy"] = "none"
    return values


def _errors(exc: Exception, values: dict[str, Any]) -> FieldErrors:
    return field_errors(exc, _resolver(_body(values)[1]))


PAGES = CrewPages(
    path="/environments",
    route="environment",
    noun="environment",
    model=Environment,
    service=service,
    create_schema=service.EnvironmentCreate,
    update_schema=service.EnvironmentUpdate,
    fields=FIELDS,
    nav="environments",
    form_template="crew/environment_form.html",
    form_context=_form_context,
    new_values=_new_values,
    read_form=_read_form,
    from_public=_values_from_environment,
    body=lambda _form, values, _creating: _body(values)[0],
    errors=_errors,
)
add_crew_routes(router, PAGES)
