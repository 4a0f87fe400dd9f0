"""Every workspace route refuses bad credentials and other tenants, and always the same way.

The routes are discovered from the app, so a route added later is covered without editing this
file (it needs an entry in `IDS`/`valid_body` only when it has a new kind of path parameter or a
body that `{}` does not satisfy).

How the code behaves, and what is pinned here: authentication is a dependency, so it runs before
the body is validated against its schema. Each refused request is therefore sent twice where the
route takes a body: once valid, once schema-invalid (an unknown field, or a missing upload); both
must get the same 401/404. A body that is not JSON at all is rejected by FastAPI's JSON parser
before any dependency runs (422), so no request here sends broken JSON.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from actana.api.app import create_app
from actana.api.context import AppContext
from tests.conftest import LiveServer, Tenant

PREFIX = "/api/v1/workspaces/{ws}"
BAD_HEADERS = {
    "missing": None,
    "basic": "Basic x",
    "bearer-alone": "Bearer",
    "bearer-garbage": "Bearer garbage",
    "bearer-dot": "Bearer .",
    "other-scheme": "Token ak_x.y",
}


def bundle(name: str) -> dict[str, Any]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("SKILL.md", f"---\nname: {name}\ndescription: d\n---\n# {name}\n")
    return {"files": {"bundle": ("skill.zip", buffer.getvalue(), "application/zip")}}


def valid_body(method: str, path: str, ids: dict[str, str]) -> dict[str, Any]:
    """httpx keyword arguments for a request the owner could make successfully."""
    route = path.removeprefix(PREFIX)
    if method == "PUT" and route == "/skills/{item_id}/bundle":
        return bundle("sk")
    if method != "POST":
        return {"json": {}} if method == "PATCH" else {}
    bodies: dict[str, dict[str, Any]] = {
        "/model-endpoints": {
            "json": {"name": "ep2", "provider": "scripted", "script": [{"text": "hi"}]}
        },
        "/environments": {"json": {"name": "env2"}},
        "/skills": {"json": {"name": "sk2", "description": "d", "skill_md": "# sk2"}},
        "/skills/upload": bundle("sk3"),
        "/mcp-servers": {"json": {"name": "srv2", "transport": "stdio", "command": "x"}},
        "/agents": {"json": {"name": "ag2", "model_endpoint_id": ids["model-endpoints"]}},
        "/api-keys": {"json": {"name": "k2"}},
        "/agents/{agent_id}/runs": {"json": {"prompt": "hello"}},
    }
    return bodies.get(route, {"json": {}})


def invalid_body(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The same request with a body its schema refuses, or None when it has no body."""
    if "files" in kwargs:
        return {}  # the upload is missing
    if "json" in kwargs:
        return {"json": {**kwargs["json"], "no_such_field": True}}
    return None


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # with `{ws}` and the other path parameters still in it

    def url(self, ws: str, ids: dict[str, str]) -> str:
        def fill(match: re.Match[str]) -> str:
            collection = self.path[: match.start()].rstrip("/").rsplit("/", 1)[-1]
            assert collection in ids, f"no test id for {self.path}: add one in make_world"
            return ids[collection]

        return re.sub(r"\{(?!ws\})\w+\}", fill, self.path).replace("{ws}", ws)

    def bodies(self, ids: dict[str, str]) -> list[dict[str, Any]]:
        valid = valid_body(self.method, self.path, ids)
        invalid = invalid_body(valid)
        return [valid] if invalid is None else [valid, invalid]


def workspace_ops(app: Any) -> list[Op]:
    """Every (method, path) of the API routes under the workspace prefix; DELETEs last."""
    try:  # newer FastAPI keeps included routers nested in app.routes; this flattens them
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies the included routes into app.routes
        routes: list[Any] = list(app.routes)
    else:
        routes = list(iter_route_contexts(app.routes))
    ops = {
        Op(method, route.path)
        for route in routes
        if isinstance(getattr(route, "original_route", route), APIRoute)
        and route.path.startswith(PREFIX)
        for method in route.methods
    }
    return sorted(ops, key=lambda op: (op.method == "DELETE", "/agents" not in op.path, op.path))


@dataclass
class World:
    ops: list[Op]
    ids: dict[str, str]  # collection path segment -> id of an object of `tenant` in it
    anon: httpx.Client  # sends no key of its own


def make_world(context: AppContext, live_server: LiveServer, tenant: Tenant) -> World:
    def post(suffix: str, body: dict[str, object]) -> str:
        r = tenant.client.post(tenant.path(suffix), json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    ids = {
        "model-endpoints": post(
            "/model-endpoints", {"name": "ep", "provider": "scripted", "script": [{"text": "hi"}]}
        ),
        "environments": post("/environments", {"name": "env"}),
        "skills": post("/skills", {"name": "sk", "description": "d", "skill_md": "# sk"}),
        "mcp-servers": post("/mcp-servers", {"name": "srv", "transport": "stdio", "command": "x"}),
        "api-keys": post("/api-keys", {"name": "spare"}),
    }
    ids["agents"] = post(
        "/agents",
        {
            "name": "ag",
            "model_endpoint_id": ids["model-endpoints"],
            "environment_id": ids["environments"],
            "skill_ids": [ids["skills"]],
            "mcp_server_ids": [ids["mcp-servers"]],
        },
    )
    r = tenant.client.post(tenant.path(f"/agents/{ids['agents']}/runs"), json={"prompt": "hi"})
    assert r.status_code == 202, r.text
    ids["runs"] = r.json()["id"]  # stays queued: this server runs no workers
    ids["{run_id}"] = "stream.jsonl"  # for /runs/{run_id}/{name}
    ids["files"] = "out.txt"  # for /runs/{run_id}/files/{name}
    ops = workspace_ops(create_app(context))
    return World(ops, ids, httpx.Client(base_url=live_server.url, timeout=30))


@pytest.fixture
def world(context: AppContext, live_server: LiveServer, tenant: Tenant) -> Iterator[World]:
    w = make_world(context, live_server, tenant)
    yield w
    w.anon.close()


Answer = tuple[int, str | None, bytes]


def refusals(
    world: World, client: httpx.Client, ws: str, header: str | None, expected: Answer
) -> list[str]:
    """Send every route (each body variant) and list those whose answer differs from
    `expected` = (status, WWW-Authenticate, raw body)."""
    headers = {} if header is None else {"Authorization": header}
    wrong = []
    for op in world.ops:
        for kwargs in op.bodies(world.ids):
            r = client.request(op.method, op.url(ws, world.ids), headers=headers, **kwargs)
            got = (r.status_code, r.headers.get("www-authenticate"), r.content)
            if got != expected:
                wrong.append(f"{op.method} {op.path} {sorted(kwargs)}: {r.status_code} {r.text}")
    return wrong


def expected_401(world: World, ws: str) -> Answer:
    r = world.anon.get(f"/api/v1/workspaces/{ws}")
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["www-authenticate"] == "Bearer"
    return (401, "Bearer", r.content)


def assert_all_401(world: World, ws: str, header: str | None) -> None:
    wrong = refusals(world, world.anon, ws, header, expected_401(world, ws))
    assert not wrong, "\n".join(wrong)


def assert_objects_intact(world: World, tenant: Tenant) -> None:
    for collection, object_id in world.ids.items():
        if collection not in ("api-keys", "{run_id}", "files"):
            r = tenant.client.get(tenant.path(f"/{collection}/{object_id}"))
            assert r.status_code == 200, r.text
    keys = tenant.client.get(tenant.path("/api-keys")).json()
    assert [k["revoked_at"] for k in keys] == [None, None]


def test_routes_are_discovered(context):
    ops = workspace_ops(create_app(context))
    pairs = {(op.method, op.path.removeprefix(PREFIX)) for op in ops}
    for expected in [
        ("GET", ""),
        ("GET", "/agents"),
        ("POST", "/agents"),
        ("GET", "/agents/{item_id}"),
        ("PATCH", "/agents/{item_id}"),
        ("DELETE", "/agents/{item_id}"),
        ("GET", "/api-keys"),
        ("POST", "/api-keys"),
        ("DELETE", "/api-keys/{key_id}"),
        ("GET", "/audit-events"),
        ("POST", "/skills/upload"),
        ("PUT", "/skills/{item_id}/bundle"),
        ("POST", "/agents/{agent_id}/runs"),
        ("GET", "/runs/{run_id}/events"),
        ("POST", "/runs/{run_id}/cancel"),
        ("GET", "/runs/{run_id}/files/{name}"),
    ]:
        assert expected in pairs
    assert len(ops) >= 30
    assert ("GET", "/healthz") not in {(op.method, op.path) for op in ops}


@pytest.mark.parametrize("kind", list(BAD_HEADERS))
def test_missing_or_malformed_credentials_get_one_401(world, tenant, kind):
    assert_all_401(world, tenant.id, BAD_HEADERS[kind])
    assert_objects_intact(world, tenant)


def test_wrong_secret_or_unknown_key_get_the_same_401(world, tenant):
    key_id, _, secret = tenant.api_key.partition(".")
    assert key_id.startswith("ak_")
    assert secret
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    for header in [
        f"Bearer {key_id}.{flipped}",
        f"Bearer {key_id}.",
        f"Bearer {key_id}",
        f"Bearer ak_{'0' * 20}.{secret}",
    ]:
        assert_all_401(world, tenant.id, header)
    assert_objects_intact(world, tenant)


def test_revoked_key_gets_the_same_401(world, tenant):
    issued = tenant.client.post(tenant.path("/api-keys"), json={"name": "doomed"})
    assert issued.status_code == 201, issued.text
    doomed = issued.json()
    as_doomed = {"Authorization": f"Bearer {doomed['api_key']}"}
    assert world.anon.get(tenant.path(), headers=as_doomed).status_code == 200
    revoked = tenant.client.delete(tenant.path(f"/api-keys/{doomed['id']}"))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert_all_401(world, tenant.id, f"Bearer {doomed['api_key']}")
    assert tenant.client.get(tenant.path()).status_code == 200  # the revoking key still works


def test_a_401_does_not_depend_on_the_workspace_existing(world, tenant):
    assert expected_401(world, tenant.id) == expected_401(world, "ws_doesnotexist")


def test_another_workspaces_key_gets_the_404_of_a_missing_workspace(world, tenant, other_tenant):
    nowhere = other_tenant.client.get("/api/v1/workspaces/ws_doesnotexist")
    assert nowhere.status_code == 404, nowhere.text
    assert nowhere.json()["error"]["code"] == "not_found"
    expected = (404, None, nowhere.content)
    wrong = refusals(world, other_tenant.client, tenant.id, None, expected)
    assert not wrong, "\n".join(wrong)
    assert_objects_intact(world, tenant)  # nothing was changed or deleted through that key


def test_the_owner_gets_through_on_every_route(world, tenant):
    """The control for the tests above: the same URLs and valid bodies with the right key
    succeed, so the ids are real and every refusal above is about the caller."""
    wrong = []
    for op in world.ops:  # DELETEs come last, the agent's first
        kwargs = valid_body(op.method, op.path, world.ids)
        r = tenant.client.request(op.method, op.url(tenant.id, world.ids), **kwargs)
        # An endpoint the POSTed agent still uses cannot be deleted: that 409 is expected.
        if op.method == "DELETE" and r.status_code == 409:
            continue
        # The run never ran (no workers here), so it has no output file: a 404 about the file.
        if op.path.endswith("/files/{name}") and "has no output file" in r.text:
            continue
        # The world's MCP server is a stdio one, whose tools are only listed inside a sandbox.
        if op.path.endswith("/discover") and r.status_code == 422 and "stdio" in r.text:
            continue
        if not r.is_success:
            wrong.append(f"{op.method} {op.path}: {r.status_code} {r.text}")
    assert not wrong, "\n".join(wrong)


def test_another_tenants_object_looks_like_a_missing_one(world, tenant, other_tenant):
    """Through its own workspace URL a tenant cannot tell another's ids from made-up ones."""
    missing_ids = {k: v.split("_")[0] + "_" + "0" * 20 for k, v in world.ids.items()}
    checked = 0
    for op in world.ops:
        if op.path.count("{") < 2:
            continue
        kwargs = valid_body(op.method, op.path, world.ids)
        foreign = op.url(other_tenant.id, world.ids)
        missing = op.url(other_tenant.id, missing_ids)
        r_foreign = other_tenant.client.request(op.method, foreign, **kwargs)
        r_missing = other_tenant.client.request(op.method, missing, **kwargs)
        assert r_foreign.status_code == 404, f"{op.method} {foreign}: {r_foreign.text}"
        assert r_missing.status_code == 404, f"{op.method} {missing}: {r_missing.text}"
        # The message echoes the id asked for; apart from that the bodies are byte-identical.
        masked = r_foreign.content
        for collection, object_id in world.ids.items():
            masked = masked.replace(object_id.encode(), missing_ids[collection].encode())
        assert masked == r_missing.content, op
        checked += 1
    assert checked >= 10
    assert_objects_intact(world, tenant)
