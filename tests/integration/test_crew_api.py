"""The crew resources over HTTP: CRUD, pagination, validation, write-only secrets, references."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant

SCRIPT = [{"text": "done"}]
_numbers = itertools.count()


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def refused(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == {404: "not_found", 409: "conflict", 422: "invalid"}[status]
    if field is not None:
        assert error.get("field") == field, error
    return error


def recorded(client: httpx.Client) -> list[bytes]:
    """Every raw response body the client receives from now on."""
    seen: list[bytes] = []
    client.event_hooks["response"].append(lambda r: seen.append(r.read()))
    return seen


def create(t: Tenant, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    made: dict[str, Any] = ok(t.client.post(t.path(f"/{kind}"), json=body), 201)
    return made


def endpoint(name: str = "ep", **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": "scripted", "script": SCRIPT, **extra}


def skill(name: str = "sk", **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": "does things", "skill_md": f"# {name}", **extra}


def stdio(name: str = "srv", **extra: Any) -> dict[str, Any]:
    return {"name": name, "transport": "stdio", "command": "mcp-srv", **extra}


def agent(t: Tenant, name: str = "ag", **extra: Any) -> dict[str, Any]:
    ep = create(t, "model-endpoints", endpoint(f"ep-{next(_numbers)}"))
    return {"name": name, "model_endpoint_id": ep["id"], **extra}


# kind -> (create body for a name, a PATCH and the field it changes to)
RESOURCES: dict[str, tuple[Callable[[Any, str], dict[str, Any]], dict[str, Any]]] = {
    "model-endpoints": (lambda t, n: endpoint(n), {"script": [{"text": "changed"}]}),
    "environments": (lambda t, n: {"name": n}, {"setup_script": "echo hi"}),
    "skills": (lambda t, n: skill(n), {"description": "changed"}),
    "mcp-servers": (lambda t, n: stdio(n), {"args": ["--flag"]}),
    "agents": (lambda t, n: agent(t, n), {"max_rounds": 3}),
}


@pytest.mark.parametrize("kind", list(RESOURCES))
def test_crud_lifecycle_with_pagination(tenant, kind):
    make, patch = RESOURCES[kind]
    url = tenant.path(f"/{kind}")
    created = [create(tenant, kind, make(tenant, f"item-{i}")) for i in (2, 0, 1)]
    first = created[1]
    assert ok(tenant.client.get(f"{url}/{first['id']}")) == first

    page = ok(tenant.client.get(url, params={"limit": 2, "offset": 1}))
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
    assert [i["name"] for i in page["items"]] == ["item-1", "item-2"]  # ordered by name
    page = ok(tenant.client.get(url, params={"limit": 2, "offset": 2}))
    assert [i["name"] for i in page["items"]] == ["item-2"]
    assert ok(tenant.client.get(url, params={"offset": 5}))["items"] == []
    assert ok(tenant.client.get(url))["limit"] == 50
    refused(tenant.client.get(url, params={"limit": 0}), 422, "limit")
    refused(tenant.client.get(url, params={"limit": 201}), 422, "limit")
    refused(tenant.client.get(url, params={"offset": -1}), 422, "offset")

    patched = ok(tenant.client.patch(f"{url}/{first['id']}", json=patch))
    for field, value in patch.items():
        assert patched[field] == value
    assert patched["name"] == first["name"]
    assert patched["updated_at"] >= first["updated_at"]
    assert ok(tenant.client.get(f"{url}/{first['id']}")) == patched

    assert tenant.client.delete(f"{url}/{first['id']}").status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        body: dict[str, Any] | None = {} if method == "PATCH" else None
        refused(tenant.client.request(method, f"{url}/{first['id']}", json=body), 404)
    assert ok(tenant.client.get(url))["total"] == 2


@pytest.mark.parametrize("kind", list(RESOURCES))
def test_names_are_unique_per_workspace(tenant, other_tenant, kind):
    make, _ = RESOURCES[kind]
    create(tenant, kind, make(tenant, "same"))
    refused(tenant.client.post(tenant.path(f"/{kind}"), json=make(tenant, "same")), 409)
    create(other_tenant, kind, make(other_tenant, "same"))  # another workspace: fine
    assert ok(other_tenant.client.get(other_tenant.path(f"/{kind}")))["total"] == 1
    second = create(tenant, kind, make(tenant, "second"))
    rename = tenant.client.patch(tenant.path(f"/{kind}/{second['id']}"), json={"name": "same"})
    refused(rename, 409)
    renamed = tenant.client.patch(tenant.path(f"/{kind}/{second['id']}"), json={"name": "second"})
    assert ok(renamed)["name"] == "second"  # keeping its own name is no conflict


@pytest.mark.parametrize("kind", list(RESOURCES))
def test_unknown_fields_are_refused(tenant, kind):
    make, _ = RESOURCES[kind]
    body = {**make(tenant, "x"), "surprise": 1}
    refused(tenant.client.post(tenant.path(f"/{kind}"), json=body), 422, "surprise")
    made = create(tenant, kind, make(tenant, "y"))
    patch = tenant.client.patch(tenant.path(f"/{kind}/{made['id']}"), json={"nmae": "z"})
    refused(patch, 422, "nmae")


def test_model_endpoint_api_key_is_write_only(context, tenant):
    seen = recorded(tenant.client)
    key = "sk-live-DO-NOT-LEAK-1234567890"
    url = tenant.path("/model-endpoints")
    body = {"name": "a", "provider": "anthropic", "model": "m"}
    refused(tenant.client.post(url, json=body), 422, "api_key")
    refused(tenant.client.post(url, json=endpoint(api_key=key)), 422, "api_key")  # scripted
    body["api_key"] = key
    ep = create(tenant, "model-endpoints", body)
    assert ep["api_key_set"] is True
    assert "api_key" not in ep
    assert ok(tenant.client.get(f"{url}/{ep['id']}"))["api_key_set"] is True
    assert ok(tenant.client.get(url))["items"][0]["api_key_set"] is True
    renamed = ok(tenant.client.patch(f"{url}/{ep['id']}", json={"name": "b"}))
    assert renamed["api_key_set"] is True  # a PATCH without api_key keeps it
    # anthropic needs a key, so clearing it is refused, and the key stays
    refused(tenant.client.patch(f"{url}/{ep['id']}", json={"api_key": None}), 422, "api_key")
    with context.database.session() as session:
        assert context.secrets.get(session, "model_endpoint", ep["id"], "api_key") == key

    compat = {"provider": "openai_compatible", "base_url": "http://llm.local:8000/v1"}
    ok(tenant.client.patch(f"{url}/{ep['id']}", json=compat))
    cleared = ok(tenant.client.patch(f"{url}/{ep['id']}", json={"api_key": None}))
    assert cleared["api_key_set"] is False
    with context.database.session() as session:
        assert context.secrets.get(session, "model_endpoint", ep["id"], "api_key") is None
    again = ok(tenant.client.patch(f"{url}/{ep['id']}", json={"api_key": key + "-2"}))
    assert again["api_key_set"] is True
    assert tenant.client.delete(f"{url}/{ep['id']}").status_code == 204
    with context.database.session() as session:  # deleting the endpoint deletes its key
        assert context.secrets.names(session, "model_endpoint", ep["id"]) == set()

    audit = ok(tenant.client.get(tenant.path("/audit-events")))
    assert any(e["action"] == "secret.written" for e in audit["items"])
    assert len(seen) >= 10
    assert not [raw for raw in seen if key.encode() in raw]


def test_model_endpoint_validation(tenant):
    url = tenant.path("/model-endpoints")

    def post(**body: Any) -> httpx.Response:
        response: httpx.Response = tenant.client.post(url, json={"name": "e", **body})
        return response

    refused(post(provider="scripted"), 422, "script")
    refused(post(provider="scripted", script=[]), 422, "script")
    both = [{"text": "x", "tool_calls": [{"name": "write_file", "args": {}}]}]
    assert refused(post(provider="scripted", script=both), 422)["field"].startswith("script.0")
    refused(post(provider="scripted", script=[{}]), 422)
    refused(post(provider="scripted", script=SCRIPT, api_key="k"), 422, "api_key")
    refused(post(provider="openai_compatible", model="m"), 422, "base_url")
    for bad_url in ["http://u:p@llm.local/v1", "https://token@llm.local", "ftp://llm.local"]:
        body = {"provider": "openai_compatible", "model": "m", "base_url": bad_url}
        refused(post(**body), 422, "base_url")
    refused(post(provider="openai", api_key="k"), 422, "model")
    refused(post(provider="openai", model="m", api_key="k", script=SCRIPT), 422, "script")
    refused(post(provider="nonsense", model="m"), 422, "provider")
    calls = [{"tool_calls": [{"name": "write_file", "args": {"path": "a"}}]}, {"text": "ok"}]
    ep = ok(post(provider="scripted", script=calls), 201)
    assert ep["script"] == calls
    assert (ep["model"], ep["api_key_set"], ep["base_url"]) == ("script", False, None)
    bad = tenant.client.patch(f"{url}/{ep['id']}", json={"script": both})
    assert refused(bad, 422)["field"].startswith("script.0")
    refused(tenant.client.patch(f"{url}/{ep['id']}", json={"script": None}), 422, "script")


def test_environment_secrets_are_write_only_and_kept(context, tenant):
    seen = recorded(tenant.client)
    url = tenant.path("/environments")
    variables = [
        {"name": "TOKEN", "value": "tok-SECRET-value-42", "secret": True},
        {"name": "REGION", "value": "eu-west-1"},
        {"name": "DB_PASS", "value": "pw-SECRET-value-43", "secret": True},
    ]
    env = create(tenant, "environments", {"name": "prod", "variables": variables})
    assert env["variables"] == [
        {"name": "TOKEN", "secret": True, "value": None, "value_set": True},
        {"name": "REGION", "secret": False, "value": "eu-west-1", "value_set": True},
        {"name": "DB_PASS", "secret": True, "value": None, "value_set": True},
    ]
    ok(tenant.client.get(f"{url}/{env['id']}"))
    ok(tenant.client.get(url))
    # TOKEN sent without a value keeps it; DB_PASS is left out, so it goes.
    patch = {"variables": [{"name": "TOKEN", "secret": True}, {"name": "REGION", "value": "us"}]}
    patched = ok(tenant.client.patch(f"{url}/{env['id']}", json=patch))
    pairs = [(v["name"], v["value_set"]) for v in patched["variables"]]
    assert pairs == [("TOKEN", True), ("REGION", True)]
    with context.database.session() as session:
        token = context.secrets.get(session, "environment", env["id"], "var:TOKEN")
        assert context.secrets.names(session, "environment", env["id"]) == {"var:TOKEN"}
    assert token == "tok-SECRET-value-42"
    new_secret = {"variables": [{"name": "NEW", "secret": True}]}
    refused(tenant.client.patch(f"{url}/{env['id']}", json=new_secret), 422, "variables.0.value")
    leaky = [variables[0], {"name": "ACTANA_TOKEN", "value": "v-SECRET-value-44", "secret": True}]
    refused(tenant.client.post(url, json={"name": "x", "variables": leaky}), 422)
    assert len(seen) >= 6
    ok(tenant.client.get(tenant.path("/audit-events")))
    assert not [raw for raw in seen if b"SECRET-value" in raw]


def test_environment_validation(tenant):
    url = tenant.path("/environments")

    def post(**body: Any) -> httpx.Response:
        response: httpx.Response = tenant.client.post(url, json={"name": "e", **body})
        return response

    for reserved in ["ACTANA_X", "OTP_RUN", "PATH", "HOME"]:
        variables = [{"name": "OK", "value": "1"}, {"name": reserved, "value": "x"}]
        refused(post(variables=variables), 422, "variables.1.name")
    twice = [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]
    refused(post(variables=twice), 422, "variables.1.name")
    refused(post(variables=[{"name": "9LIVES", "value": "1"}]), 422, "variables.0.name")
    refused(post(variables=[{"name": "A"}]), 422, "variables.0.value")
    refused(post(network_policy="allowlist"), 422, "allowed_domains")
    refused(post(network_policy="none", allowed_domains=["example.com"]), 422, "allowed_domains")
    not_domains = ["10.0.0.1", "[::1]", "127.1", "0x7f.1", "*.com", "example.com:443"]
    for bad in [*not_domains, "https://example.com", "http://example.com/x"]:
        domains = ["example.com", bad]
        refused(post(network_policy="allowlist", allowed_domains=domains), 422, "allowed_domains.1")
    domains = [" Example.COM. ", "*.Pypi.org", "localhost"]
    env = ok(post(network_policy="allowlist", allowed_domains=domains), 201)
    assert env["allowed_domains"] == ["example.com", "*.pypi.org", "localhost"]
    env_url = f"{url}/{env['id']}"
    bad_patch = {"allowed_domains": ["1.2.3.4"]}
    refused(tenant.client.patch(env_url, json=bad_patch), 422, "allowed_domains.0")
    opened = ok(tenant.client.patch(env_url, json={"network_policy": "open"}))
    assert (opened["network_policy"], opened["allowed_domains"]) == ("open", [])
    refused(tenant.client.patch(env_url, json={"network_policy": "allowlist"}), 422)


def test_mcp_server_validation_and_write_only_headers(context, tenant):
    seen = recorded(tenant.client)
    url = tenant.path("/mcp-servers")
    post = tenant.client.post
    refused(post(url, json={"name": "s", "transport": "stdio"}), 422, "command")
    refused(post(url, json={"name": "s", "transport": "http"}), 422, "url")
    refused(post(url, json={"name": "s", "transport": "http", "url": "http://u:p@h"}), 422, "url")
    refused(post(url, json=stdio(url="http://h")), 422, "url")
    for bad_name in ["a__b", "a.b", "_a", "x" * 33]:
        refused(post(url, json=stdio(bad_name)), 422, "name")
    headers = {"Authorization": "Bearer HDR-SECRET-1", "X-Team": "HDR-SECRET-2"}
    body = {"name": "remote", "transport": "http", "url": "https://mcp.example.com/mcp"}
    srv = create(tenant, "mcp-servers", {**body, "headers": headers})
    assert srv["headers_set"] == ["Authorization", "X-Team"]
    assert "headers" not in srv
    srv_url = f"{url}/{srv['id']}"
    refused(tenant.client.patch(srv_url, json={"name": "re__mote"}), 422, "name")
    # null keeps Authorization's stored value, X-Team is dropped, X-New is added
    new_headers = {"Authorization": None, "X-New": "HDR-SECRET-3"}
    patched = ok(tenant.client.patch(srv_url, json={"headers": new_headers}))
    assert patched["headers_set"] == ["Authorization", "X-New"]
    with context.database.session() as session:
        stored = context.secrets.names(session, "mcp_server", srv["id"])
        value = context.secrets.get(session, "mcp_server", srv["id"], "header:Authorization")
    assert stored == {"header:Authorization", "header:X-New"}
    assert value == "Bearer HDR-SECRET-1"
    unknown = {"headers": {"X-Unknown": None}}
    refused(tenant.client.patch(srv_url, json=unknown), 422, "headers.X-Unknown")
    ok(tenant.client.get(srv_url))
    ok(tenant.client.get(url))
    assert not [raw for raw in seen if b"HDR-SECRET" in raw]


def test_agent_defaults_and_skill_list_replacement(tenant):
    body = agent(tenant)
    made = create(tenant, "agents", body)
    assert made["max_rounds"] == 10
    assert made["sandbox_flavor"] == "container"
    assert (made["environment_id"], made["timeout_sec"], made["system_prompt"]) == (None, None, "")
    assert (made["skill_ids"], made["mcp_server_ids"]) == ([], [])
    s1, s2, s3 = (create(tenant, "skills", skill(f"s{i}"))["id"] for i in (1, 2, 3))
    url = tenant.path(f"/agents/{made['id']}")
    assert ok(tenant.client.patch(url, json={"skill_ids": [s1, s2]}))["skill_ids"] == [s1, s2]
    assert ok(tenant.client.patch(url, json={"skill_ids": [s3, s1]}))["skill_ids"] == [s3, s1]
    assert ok(tenant.client.patch(url, json={"skill_ids": [s3, s1]}))["skill_ids"] == [s3, s1]
    refused(tenant.client.patch(url, json={"skill_ids": [s2, s2]}), 422, "skill_ids.1")
    assert ok(tenant.client.get(url))["skill_ids"] == [s3, s1]
    assert ok(tenant.client.patch(url, json={"max_rounds": 5}))["skill_ids"] == [s3, s1]
    assert ok(tenant.client.patch(url, json={"skill_ids": []}))["skill_ids"] == []
    m1, m2 = (create(tenant, "mcp-servers", stdio(f"m{i}"))["id"] for i in (1, 2))
    for ids in ([m1, m2], [m2], [m2]):
        assert ok(tenant.client.patch(url, json={"mcp_server_ids": ids}))["mcp_server_ids"] == ids
    refused(tenant.client.patch(url, json={"max_rounds": 0}), 422, "max_rounds")
    refused(tenant.client.patch(url, json={"sandbox_flavor": "vm"}), 422, "sandbox_flavor")


def test_agent_tools_default_to_the_catalogue_and_refuse_unknown_names(tenant):
    made = create(tenant, "agents", agent(tenant))
    assert made["tools"] is None  # the default set
    url = tenant.path(f"/agents/{made['id']}")
    assert ok(tenant.client.patch(url, json={"tools": ["bash", "finish"]}))["tools"] == [
        "bash",
        "finish",
    ]
    answer = refused(tenant.client.patch(url, json={"tools": ["bash", "rm_rf"]}), 422, "tools")
    assert "rm_rf" in answer["message"]
    assert "read_file" in answer["message"]
    refused(tenant.client.patch(url, json={"tools": ["bash", "bash"]}), 422, "tools")
    assert ok(tenant.client.get(url))["tools"] == ["bash", "finish"]
    assert ok(tenant.client.patch(url, json={"tools": None}))["tools"] is None


def test_agents_cannot_reference_another_workspaces_objects(tenant, other_tenant):
    theirs = {
        "model_endpoint_id": create(other_tenant, "model-endpoints", endpoint())["id"],
        "environment_id": create(other_tenant, "environments", {"name": "env"})["id"],
        "skill_ids": [create(other_tenant, "skills", skill())["id"]],
        "mcp_server_ids": [create(other_tenant, "mcp-servers", stdio())["id"]],
    }
    mine = agent(tenant)
    my_skill = create(tenant, "skills", skill())["id"]
    url = tenant.path("/agents")
    for field, value in theirs.items():
        at_fault = f"{field}.0" if isinstance(value, list) else field
        refused(tenant.client.post(url, json={**mine, field: value}), 422, at_fault)
    mixed = {**mine, "skill_ids": [my_skill, *theirs["skill_ids"]]}
    refused(tenant.client.post(url, json=mixed), 422, "skill_ids.1")
    refused(tenant.client.post(url, json={**mine, "environment_id": "env_nope"}), 422)
    made = create(tenant, "agents", {**mine, "skill_ids": [my_skill]})
    for field, value in theirs.items():
        at_fault = f"{field}.0" if isinstance(value, list) else field
        refused(tenant.client.patch(f"{url}/{made['id']}", json={field: value}), 422, at_fault)
    assert ok(tenant.client.get(f"{url}/{made['id']}")) == made


def test_objects_used_by_an_agent_cannot_be_deleted(tenant):
    bodies = [endpoint(), {"name": "env"}, skill(), stdio()]
    kinds = ["model-endpoints", "environments", "skills", "mcp-servers"]
    used = {k: create(tenant, k, b)["id"] for k, b in zip(kinds, bodies, strict=True)}
    refs = {"environment_id": used["environments"], "skill_ids": [used["skills"]]}
    body = {"name": "ag", "model_endpoint_id": used["model-endpoints"], **refs}
    ag = create(tenant, "agents", {**body, "mcp_server_ids": [used["mcp-servers"]]})
    for kind, object_id in used.items():
        refused(tenant.client.delete(tenant.path(f"/{kind}/{object_id}")), 409)
        ok(tenant.client.get(tenant.path(f"/{kind}/{object_id}")))
    assert tenant.client.delete(tenant.path(f"/agents/{ag['id']}")).status_code == 204
    for kind, object_id in used.items():
        assert tenant.client.delete(tenant.path(f"/{kind}/{object_id}")).status_code == 204


def test_skill_names_and_content_hash(tenant):
    url = tenant.path("/skills")
    for bad in ["My-Skill", "a--b", "-a", "a-", "a_b", "a.b", ""]:
        refused(tenant.client.post(url, json=skill(bad)), 422, "name")
    refused(tenant.client.post(url, json=skill("ok", description="")), 422, "description")
    made = create(tenant, "skills", skill("pdf-tools-2"))
    assert (made["files"], len(made["content_hash"])) == ([], 64)
    item = f"{url}/{made['id']}"
    described = ok(tenant.client.patch(item, json={"description": "new words"}))
    assert described["content_hash"] == made["content_hash"]
    edited = ok(tenant.client.patch(item, json={"skill_md": "# changed"}))
    assert edited["content_hash"] != made["content_hash"]
    reverted = ok(tenant.client.patch(item, json={"skill_md": made["skill_md"]}))
    assert reverted["content_hash"] == made["content_hash"]
    refused(tenant.client.patch(item, json={"name": "Bad_Name"}), 422, "name")


def test_api_keys_issue_list_revoke_and_audit(tenant, other_tenant, live_server):
    url = tenant.path("/api-keys")
    issued = ok(tenant.client.post(url, json={"name": "ci"}), 201)
    key_id, _, secret = issued["api_key"].partition(".")
    assert (key_id, issued["name"], issued["revoked_at"]) == (issued["id"], "ci", None)
    as_ci = {"Authorization": f"Bearer {issued['api_key']}"}
    with httpx.Client(base_url=live_server.url, headers=as_ci) as ci:
        assert ok(ci.get(tenant.path()))["id"] == tenant.id
        listing = tenant.client.get(url)
        keys = ok(listing)
        assert [k["name"] for k in keys] == ["default", "ci"]
        assert all(set(k) == {"id", "name", "created_at", "revoked_at"} for k in keys)
        assert secret not in listing.text
        assert tenant.api_key.partition(".")[2] not in listing.text
        refused(tenant.client.post(url, json={"name": "bad name"}), 422, "name")
        refused(other_tenant.client.delete(other_tenant.path(f"/api-keys/{key_id}")), 404)
        refused(tenant.client.delete(f"{url}/ak_nope"), 404)
        assert ok(ci.get(url))  # still live after the refused revocations
        revoked = ok(tenant.client.delete(f"{url}/{key_id}"))
        assert revoked["revoked_at"] is not None
        assert ok(tenant.client.delete(f"{url}/{key_id}"))["revoked_at"] == revoked["revoked_at"]
        assert ci.get(tenant.path()).status_code == 401

    body = {"name": "llm", "provider": "openai", "model": "m", "api_key": "sk-AUDIT-SECRET"}
    create(tenant, "model-endpoints", body)
    events = tenant.client.get(tenant.path("/audit-events"), params={"limit": 200})
    page = ok(events)
    actions = [e["action"] for e in page["items"]]
    assert {"api_key.issued", "api_key.revoked", "secret.written"} <= set(actions)
    assert actions.count("api_key.revoked") == 1  # revoking twice is recorded once
    assert page["total"] == len(page["items"])
    assert {e["target"] for e in page["items"] if e["action"] == "api_key.revoked"} == {key_id}
    assert key_id in {e["target"] for e in page["items"] if e["action"] == "api_key.issued"}
    written = next(e for e in page["items"] if e["action"] == "secret.written")
    assert written["detail"] == {"name": "api_key"}
    for leaked in ["sk-AUDIT-SECRET", secret, tenant.api_key.partition(".")[2]]:
        assert leaked not in events.text
    first = ok(tenant.client.get(tenant.path("/audit-events"), params={"limit": 1}))
    assert (len(first["items"]), first["total"]) == (1, page["total"])
    assert first["items"][0] == page["items"][0]  # newest first
    theirs = ok(other_tenant.client.get(other_tenant.path("/audit-events")))["items"]
    assert theirs
    assert key_id not in {e["target"] for e in theirs}
