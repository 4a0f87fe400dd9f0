"""The six routes every crew resource has (list, new, create, show, update, delete), once.

Each crew page module describes its resource with a `CrewPages` (model, service, schemas, how
form values become an API body and a stored row becomes form values, which page shows the
form) and hands it to `add_crew_routes`; what is left in the module is what is genuinely its
own (form parsing, extra buttons and routes). The flow is the same for all of them, so a rule
about it (a save is all-or-nothing, a refused save shows the form again with the messages next
to the fields, a delete refused because something still uses the object says so on its page,
a success redirects with a flash) is written here, once.

No `from __future__ import annotations`: FastAPI reads the nested routes' signatures, and their
annotations must resolve against this module.
"""

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from actana.api.context import AppContext
from actana.api.deps import Context, DbSession
from actana.crew.common import get_owned, list_owned
from actana.db.models import Base
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
from actana.web.crew_forms import FORM, SAVE_ERRORS, FieldErrors, field_errors, nearest, save
from actana.web.session import WebSession, WebUser

Values = dict[str, Any]
"""A form's values as the template shows them: what was typed, or the stored object's."""

FormContext = Callable[[WebSession, Session, Values, Any], Values]
"""(user, session, values, stored public object or None) -> what else the form template needs."""

ReadForm = Callable[[FormData, Any, AppContext, Session], Values]
"""(form, stored public object or None, context, session) -> the values to show again."""


@dataclass(frozen=True)
class CrewPages:
    """What the shared routes need to know about one crew resource."""

    path: str
    """Below /ui, e.g. `/model-endpoints`; the object's page is `{path}/{id}`."""
    route: str
    """Route names: `ui_{route}`, `ui_{route}_new|create|update|delete`; the list page's is
    `ui_{route}s`, its template `crew/{route}s.html`, which lists them as `{route}s`."""
    noun: str
    """As in messages and 404s: "model endpoint", "MCP server"."""
    model: type[Base]
    service: ModuleType
    """`create`, `update`, `delete` and `to_public`, as the API uses them (`actana.crew.*`)."""
    create_schema: type[BaseModel]
    update_schema: type[BaseModel]
    fields: frozenset[str]
    """The form's fields: an error on a service path goes to the nearest of them."""
    nav: str
    """The navigation item shown as current on its pages."""
    form_template: str
    """The form page: a new object's (unless `new_template`) and a stored one's."""
    form_context: FormContext
    new_values: Callable[[], Values]
    """A new object's form before anything is typed (its defaults)."""
    read_form: ReadForm
    from_public: Callable[[Any], Values]
    """A stored object (as `to_public` returns it) -> its form values."""
    body: Callable[[FormData, Values, bool], dict[str, Any]]
    """(form, values, creating) -> the JSON body an API client would send; may raise
    `FormInvalid`."""
    errors: Callable[[Exception, Values], FieldErrors] | None = None
    """(exception, values) -> field messages; by default each goes to its nearest field."""
    list_public: bool = True
    """False: the list template gets the rows themselves (cheaper when `to_public` loads links)."""
    list_extra: Callable[[Session, str], dict[str, Any]] | None = None
    """(session, workspace id) -> more context for the list template."""
    new_template: str | None = None
    """A new object's own form page, when it is not `form_template` (skills)."""

    @property
    def title(self) -> str:
        return self.noun[0].upper() + self.noun[1:]

    def field_errors(self, exc: Exception, values: Values) -> FieldErrors:
        """A refused save's messages, keyed by the form field that shows each."""
        if self.errors is not None:
            return self.errors(exc, values)
        return field_errors(exc, lambda path: nearest(path, self.fields))

    def form_page(
        self,
        request: Request,
        user: WebSession,
        session: Session,
        values: Values,
        public: Any = None,
        *,
        errors: FieldErrors | None = None,
        status_code: int = 200,
    ) -> Response:
        """The form, blank or as typed (`public` None: a new object) or the stored object's
        page; with errors it answers 422 unless `status_code` says otherwise."""
        template = self.new_template if public is None and self.new_template else self.form_template
        return render(
            request,
            user,
            template,
            errors=errors,
            status_code=status_code,
            values=values,
            nav=self.nav,
            **self.form_context(user, session, values, public),
        )

    def public(self, context: AppContext, session: Session, user: WebSession, item_id: str) -> Any:
        """The object as the API shows it; 404 when it is not the workspace's."""
        row = get_owned(session, self.model, user.workspace_id, item_id, self.noun)
        return self.service.to_public(context, session, row)


def add_crew_routes(router: APIRouter, pages: CrewPages) -> None:
    """Add the resource's six routes to `router`.

    Call it after any route of the module whose path would otherwise be taken for an id
    (`POST /skills/upload` before `POST /skills/{id}`).
    """
    p = pages

    def list_page(
        request: Request, user: WebUser, context: Context, session: DbSession
    ) -> Response:
        offset = page_offset(request)
        rows, total = list_owned(
            session, p.model, user.workspace_id, limit=PAGE_SIZE, offset=offset
        )
        items = (
            [p.service.to_public(context, session, row) for row in rows] if p.list_public else rows
        )
        extra = p.list_extra(session, user.workspace_id) if p.list_extra else {}
        context_ = {p.route + "s": items, **extra}
        return render(
            request,
            user,
            f"crew/{p.route}s.html",
            pager=pager(offset, total),
            nav=p.nav,
            **context_,
        )

    def new_page(request: Request, user: WebUser, session: DbSession) -> Response:
        return p.form_page(request, user, session, p.new_values())

    def create(
        request: Request, user: WebUser, form: PostedForm, context: Context, session: DbSession
    ) -> Response:
        values = p.read_form(checked_form(user, form), None, context, session)
        try:
            body = p.create_schema.model_validate(p.body(form, values, True))
            row = save(
                context,
                lambda s: p.service.create(context, s, user.workspace_id, body, actor(user)),
            )
        except SAVE_ERRORS as exc:
            return p.form_page(request, user, session, values, errors=p.field_errors(exc, values))
        return redirect(f"{p.path}/{row.id}", f"{p.title} created.")

    def show(
        item_id: str, request: Request, user: WebUser, context: Context, session: DbSession
    ) -> Response:
        public = p.public(context, session, user, item_id)
        return p.form_page(request, user, session, p.from_public(public), public)

    def update(
        item_id: str,
        request: Request,
        user: WebUser,
        form: PostedForm,
        context: Context,
        session: DbSession,
    ) -> Response:
        checked_form(user, form)
        public = p.public(context, session, user, item_id)  # 404 before anything else
        values = p.read_form(form, public, context, session)
        try:
            body = p.update_schema.model_validate(p.body(form, values, False))
            save(
                context,
                lambda s: p.service.update(
                    context, s, user.workspace_id, item_id, body, actor(user)
                ),
            )
        except SAVE_ERRORS as exc:
            errors = p.field_errors(exc, values)
            return p.form_page(request, user, session, values, public, errors=errors)
        return redirect(f"{p.path}/{item_id}", f"{p.title} saved.")

    def delete(
        item_id: str,
        request: Request,
        user: WebUser,
        form: PostedForm,
        context: Context,
        session: DbSession,
    ) -> Response:
        checked_form(user, form)
        try:
            save(context, lambda s: p.service.delete(context, s, user.workspace_id, item_id))
        except ConflictError as exc:  # still used by an agent: say so on its page
            public = p.public(context, session, user, item_id)
            values = p.from_public(public)
            errors = {FORM: exc.message}
            return p.form_page(
                request, user, session, values, public, errors=errors, status_code=409
            )
        return redirect(p.path, f"{p.title} deleted.")

    one = p.path + "/{item_id}"
    for path, route, method, name in (
        (p.path, list_page, "GET", p.route + "s"),
        (p.path + "/new", new_page, "GET", p.route + "_new"),
        (p.path, create, "POST", p.route + "_create"),
        (one, show, "GET", p.route),
        (one, update, "POST", p.route + "_update"),
        (one + "/delete", delete, "POST", p.route + "_delete"),
    ):
        router.add_api_route(path, route, methods=[method], name="ui_" + name)
