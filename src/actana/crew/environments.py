"""Environments: variables (secret ones encrypted), a setup script and a network policy."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from actana.api.context import AppContext
from actana.crew.common import Name, StrictModel, ensure_name_free, get_owned, touch
from actana.db.models import Agent, Environment, new_id
from actana.exceptions import ConflictError, InvalidInputError

OWNER_KIND = "environment"
NetworkPolicy = Literal["none", "allowlist", "open"]
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# The runtime owns these names inside the sandbox; letting a user set them would let an
# environment impersonate the bootstrap.
_RESERVED_PREFIXES = ("ACTANA_", "OTP_")
_RESERVED_NAMES = {"WORKSPACE_DIR", "HOME", "PATH"}
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class VariableIn(StrictModel):
    name: str = Field(max_length=128)
    value: str | None = Field(default=None, max_length=32768)
    secret: bool = False


class VariablePublic(BaseModel):
    name: str
    secret: bool
    value: str | None = Field(description="Plain variables only; secret values are never shown")
    value_set: bool


class EnvironmentCreate(StrictModel):
    name: Name
    variables: list[VariableIn] = Field(default_factory=list, max_length=200)
    setup_script: str = Field(default="", max_length=65536)
    network_policy: NetworkPolicy = "none"
    allowed_domains: list[str] = Field(default_factory=list, max_length=200)


class EnvironmentUpdate(StrictModel):
    """Fields to change. `variables` replaces the whole list; a secret variable sent without a
    value keeps the value it has."""

    name: Name | None = None
    variables: list[VariableIn] | None = Field(default=None, max_length=200)
    setup_script: str | None = Field(default=None, max_length=65536)
    network_policy: NetworkPolicy | None = None
    allowed_domains: list[str] | None = Field(default=None, max_length=200)


class EnvironmentPublic(BaseModel):
    id: str
    name: str
    variables: list[VariablePublic]
    setup_script: str
    network_policy: str
    allowed_domains: list[str]
    created_at: datetime
    updated_at: datetime


def normalise_domain(raw: str, field: str) -> str:
    """A lower-case domain name, optionally `*.`-prefixed; IPs, ports and URLs are refused."""
    domain = raw.strip().lower().rstrip(".")
    wildcard = domain.startswith("*.")
    bare = domain[2:] if wildcard else domain
    labels = bare.split(".")
    # Resolvers also read `127.1`, `0x7f.1` and `017.0.0.1` as IPv4 addresses: a name whose
    # last label is a number is an address (the URL standard's "ends in a number"), not a domain.
    try:
        ipaddress.ip_address(bare.strip("[]"))
    except ValueError:
        numeric = re.fullmatch(r"[0-9]+|0x[0-9a-f]*", labels[-1]) is not None
    else:
        numeric = True
    if numeric:
        raise InvalidInputError(f"{raw!r} is an IP address; allow domain names only", field=field)
    # One label is a host name (`localhost`, an intranet `mirror`: reachable only where the
    # deployment exempts its network); a wildcard needs two, so `*.com` is refused.
    too_short = len(labels) < (2 if wildcard else 1)
    if len(bare) > 253 or too_short or not all(_DOMAIN_LABEL.match(x) for x in labels):
        raise InvalidInputError(
            f"{raw!r} is not a domain name like example.com or *.example.com", field=field
        )
    return domain


def _check_variables(variables: list[VariableIn], *, existing_secrets: set[str]) -> None:
    seen: set[str] = set()
    for i, var in enumerate(variables):
        field = f"variables.{i}"
        if not _VAR_NAME.match(var.name):
            raise InvalidInputError(
                f"{var.name!r} is not a variable name (letters, digits, _; not starting with a "
                "digit)",
                field=f"{field}.name",
            )
        if var.name.startswith(_RESERVED_PREFIXES) or var.name in _RESERVED_NAMES:
            raise InvalidInputError(
                f"{var.name} is reserved for the sandbox runtime", field=f"{field}.name"
            )
        if var.name in seen:
            raise InvalidInputError(f"variable {var.name} is given twice", field=f"{field}.name")
        seen.add(var.name)
        if var.value is None and not (var.secret and f"var:{var.name}" in existing_secrets):
            raise InvalidInputError(f"variable {var.name} needs a value", field=f"{field}.value")


def _check_policy(policy: str, domains: list[str]) -> list[str]:
    normalised = [normalise_domain(d, f"allowed_domains.{i}") for i, d in enumerate(domains)]
    if policy == "allowlist" and not normalised:
        raise InvalidInputError(
            "network_policy allowlist needs at least one allowed domain", field="allowed_domains"
        )
    if policy != "allowlist" and normalised:
        raise InvalidInputError(
            f"allowed_domains only apply to network_policy allowlist, not {policy}",
            field="allowed_domains",
        )
    return normalised


def _store_variables(
    context: AppContext, session: Session, row: Environment, variables: list[VariableIn], actor: str
) -> None:
    stored: list[dict[str, Any]] = []
    keep: set[str] = set()
    for var in variables:
        if var.secret:
            keep.add(f"var:{var.name}")
            if var.value is not None:
                context.secrets.put(
                    session,
                    workspace_id=row.workspace_id,
                    owner_kind=OWNER_KIND,
                    owner_id=row.id,
                    name=f"var:{var.name}",
                    value=var.value,
                    actor=actor,
                )
            stored.append({"name": var.name, "secret": True})
        else:
            stored.append({"name": var.name, "secret": False, "value": var.value})
    for name in context.secrets.names(session, OWNER_KIND, row.id) - keep:
        context.secrets.delete(session, OWNER_KIND, row.id, name)
    row.variables = stored


def to_public(context: AppContext, session: Session, row: Environment) -> EnvironmentPublic:
    secret_names = context.secrets.names(session, OWNER_KIND, row.id)
    variables = [
        VariablePublic(
            name=v["name"],
            secret=v["secret"],
            value=None if v["secret"] else v.get("value"),
            value_set=(f"var:{v['name']}" in secret_names) if v["secret"] else True,
        )
        for v in row.variables
    ]
    return EnvironmentPublic(
        id=row.id,
        name=row.name,
        variables=variables,
        setup_script=row.setup_script,
        network_policy=row.network_policy,
        allowed_domains=list(row.allowed_domains),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create(
    context: AppContext, session: Session, workspace_id: str, body: EnvironmentCreate, actor: str
) -> Environment:
    ensure_name_free(session, Environment, workspace_id, body.name, "environment")
    _check_variables(body.variables, existing_secrets=set())
    row = Environment(
        id=new_id("env"),
        workspace_id=workspace_id,
        name=body.name,
        setup_script=body.setup_script,
        network_policy=body.network_policy,
        allowed_domains=_check_policy(body.network_policy, body.allowed_domains),
    )
    session.add(row)
    session.flush()
    _store_variables(context, session, row, body.variables, actor)
    return row


def update(
    context: AppContext,
    session: Session,
    workspace_id: str,
    environment_id: str,
    body: EnvironmentUpdate,
    actor: str,
) -> Environment:
    row = get_owned(session, Environment, workspace_id, environment_id, "environment")
    if body.name is not None:
        ensure_name_free(
            session, Environment, workspace_id, body.name, "environment", exclude_id=row.id
        )
        row.name = body.name
    if body.setup_script is not None:
        row.setup_script = body.setup_script
    policy = body.network_policy or row.network_policy
    domains = body.allowed_domains if body.allowed_domains is not None else row.allowed_domains
    if body.network_policy is not None and body.network_policy != "allowlist":
        domains = [] if body.allowed_domains is None else domains
    row.allowed_domains = _check_policy(policy, list(domains))
    row.network_policy = policy
    if body.variables is not None:
        existing = context.secrets.names(session, OWNER_KIND, row.id)
        _check_variables(body.variables, existing_secrets=existing)
        _store_variables(context, session, row, body.variables, actor)
    touch(row)
    return row


def delete(context: AppContext, session: Session, workspace_id: str, environment_id: str) -> None:
    row = get_owned(session, Environment, workspace_id, environment_id, "environment")
    users = list(session.scalars(select(Agent.name).where(Agent.environment_id == row.id)))
    if users:
        raise ConflictError(
            f"environment {row.name!r} is used by agent(s) {', '.join(sorted(users))}; "
            "point them elsewhere first"
        )
    context.secrets.delete(session, OWNER_KIND, row.id)
    session.delete(row)
