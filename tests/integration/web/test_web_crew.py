"""The crew pages over real HTTP, as a browser without JavaScript uses them: sign in, read the
CSRF token from the page, post forms, follow redirects; errors next to the field at fault, typed
input kept, secrets never sent back, other workspaces' objects 404, hostile text escaped."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant
from tests.integration.web.conftest import meta_token

HOSTILE = "<script>alert(1)</script>"
SCRIPT = [{"text": "done"}]

Browser = Callable[[Tenant], httpx.Client]


class Page(HTMLParser):
    """The elements of a page by id: tag, attributes, and text (a textarea's text is its value)."""

    VOID = frozenset({"input", "meta", "link", "br", "hr", "img"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = html
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_name: dict[str, list[dict[str, Any]]] = {}
        self._open: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element: dict[str, Any] = {"tag": tag, "attrs": dict(attrs), "text": ""}
        if "id" in element["attrs"]:
            self.by_id[element["attrs"]["id"]] = element
        if "name" in element["attrs"]:
            self.by_name.setdefault(element["attrs"]["name"], []).append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data

    def error(self, field: str) -> str:
        """The message shown next to `field` (asserts there is one)."""
        assert f"{field}-error" in self.by_id, f"no error next to {field}: {self.errors()}"
        return str(self.by_id[f"{field}-error"]["text"]).strip()

    def errors(self) -> dict[str, str]:
        return {
            k.removesuffix("-error"): str(v["text"]).strip()
            for k, v in self.by_id.items()
            if k.endswith("-error")
        }

    def value(self, field: str) -> str:
        """What the form shows in `field` (input value, textarea text, selected option)."""
        element = self.by_id[field]
        if element["tag"] == "textarea":
            return str(element["text"]).removeprefix("\n")
        if element["tag"] == "select":
            # Options carry no name: read the ones between this select's tags.
            start = self.html.index(f'id="{field}"')
            end = self.html.index("</select>", start)
            return next((v for v, chosen in _options(self.html[start:end]) if chosen), "")
        return str(element["attrs"].get("value") or "")

    def checked(self, name: str) -> list[str]:
        return [
            str(e["attrs"].get("value"))
            for e in self.by_name.get(name, [])
            if "checked" in e["attrs"]
        ]


def _options(html: str) -> list[tuple[str, bool]]:
    found: list[tuple[str, bool]] = []

    class Options(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "option":
                values = dict(attrs)
                found.append((values.get("value") or "", "selected" in values))

    Options().feed(html)
    return found


# --- helpers ----------------------------------------------------------------------------------


def page(client: httpx.Client, path: str, status: int = 200) -> Page:
    r = client.get(path)
    assert r.status_code == status, r.text[:2000]
    return Page(r.text)


def post(
    client: httpx.Client,
    path: str,
    data: dict[str, Any] | list[tuple[str, str]],
    *,
    token_from: str | None = None,
    files: dict[str, Any] | None = None,
) -> httpx.Response:
    """Post a form the way the page would: with the CSRF token read from a page."""
    token = meta_token(client.get(token_from or "/ui/agents").text)
    items = list(data.items()) if isinstance(data, dict) else list(data)
    fields: dict[str, list[str]] = {"csrf_token": [token]}
    for name, value in items:  # repeated names (checkbox groups) keep their order
        fields.setdefault(name, []).append(value)
    return client.post(path, data=fields, files=files)


def saved(r: httpx.Response, prefix: str) -> str:
    """The id a successful create redirected to."""
    assert r.status_code == 303, r.text[:3000]
    location = r.headers["location"]
    assert location.startswith(prefix), location
    return location.removeprefix(prefix)


def refused(r: httpx.Response, status: int = 422) -> Page:
    assert r.status_code == status, r.text[:3000]
    return Page(r.text)


def api(t: Tenant, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    r = t.client.post(t.path(f"/{kind}"), json=body)
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


def api_get(t: Tenant, kind: str, object_id: str) -> dict[str, Any]:
    r = t.client.get(t.path(f"/{kind}/{object_id}"))
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def scripted(t: Tenant, name: str = "ep") -> dict[str, Any]:
    return api(t, "model-endpoints", {"name": name, "provider": "scripted", "script": SCRIPT})


# --- agents -----------------------------------------------------------------------------------


def test_agent_create_edit_delete(tenant: Tenant, browser: Browser) -> None:
    web = browser(tenant)
    ep = scripted(tenant)
    env = api(tenant, "environments", {"name": "env"})
    s1 = api(tenant, "skills", {"name": "one", "description": "d", "skill_md": "# one"})
    s2 = api(tenant, "skills", {"name": "two", "description": "d", "skill_md": "# two"})
    form = page(web, "/ui/agents/new")
    assert form.value("max_rounds") == "10"
    assert ep["id"] in form.html

    r = post(
        web,
        "/ui/agents",
        [
            ("name", "helper"),
            ("system_prompt", "Be brief.\r\nReally."),
            ("model_endpoint_id", ep["id"]),
            ("environment_id", env["id"]),
            ("max_rounds", "7"),
            ("sandbox_flavor", "native"),
            ("timeout_sec", ""),
            ("max_model_calls", "12"),
            ("skill_ids", s2["id"]),
            ("skill_ids", s1["id"]),
            ("tools_mode", "custom"),
            ("tools", "read_file"),
            ("tools", "bash"),
        ],
    )
    agent_id = saved(r, "/ui/agents/")
    made = api_get(tenant, "agents", agent_id)
    assert made["system_prompt"] == "Be brief.\nReally."
    assert (made["max_rounds"], made["sandbox_flavor"], made["timeout_sec"]) == (7, "native", None)
    assert made["max_model_calls"] == 12
    assert made["skill_ids"] == [s2["id"], s1["id"]]  # the order ticked is the link order
    assert made["tools"] == ["read_file", "bash"]
    assert made["environment_id"] == env["id"]

    shown = page(web, f"/ui/agents/{agent_id}")
    assert shown.value("name") == "helper"
    assert shown.checked("skill_ids") == [s2["id"], s1["id"]]
    assert shown.checked("tools") == ["read_file", "bash"]
    assert "helper" in page(web, "/ui/agents").by_id["agents-table"]["text"]

    # Edit: back to the default tool set, no environment, no skills.
    r = post(
        web,
        f"/ui/agents/{agent_id}",
        {
            "name": "helper2",
            "system_prompt": "",
            "model_endpoint_id": ep["id"],
            "environment_id": "",
            "max_rounds": "3",
            "sandbox_flavor": "container",
            "tools_mode": "default",
            "tools": "bash",
        },
    )
    assert saved(r, "/ui/agents/") == agent_id
    made = api_get(tenant, "agents", agent_id)
    assert (made["name"], made["environment_id"], made["tools"]) == ("helper2", None, None)
    assert (made["skill_ids"], made["max_rounds"], made["max_model_calls"]) == ([], 3, None)

    r = post(web, f"/ui/agents/{agent_id}/delete", {})
    assert r.status_code == 303
    assert tenant.client.get(tenant.path(f"/agents/{agent_id}")).status_code == 404


def test_agent_errors_next_to_the_field_keep_the_input(tenant: Tenant, browser: Browser) -> None:
    web = browser(tenant)
    ep = scripted(tenant)
    typed = {
        "name": "bad name!",
        "system_prompt": "keep me",
        "model_endpoint_id": ep["id"],
        "max_rounds": "abc",
        "sandbox_flavor": "container",
        "tools_mode": "custom",
        "tools": "bash",
    }
    shown = refused(post(web, "/ui/agents", typed))
    assert "letters, digits" in shown.error("name")
    assert "integer" in shown.error("max_rounds")
    assert shown.value("name") == "bad name!"
    assert shown.value("system_prompt") == "keep me"
    assert shown.value("max_rounds") == "abc"
    assert shown.value("model_endpoint_id") == ep["id"]
    assert shown.checked("tools") == ["bash"]

    # A service rule (not a pydantic one) lands next to its field too.
    other = {**typed, "name": "ok", "max_rounds": "5", "environment_id": "env_nope"}
    shown = refused(post(web, "/ui/agents", other))
    assert "no environment" in shown.error("environment_id")
    shown = refused(
        post(web, "/ui/agents", {**other, "environment_id": "", "model_endpoint_id": ""})
    )
    assert "model endpoint" in shown.error("model_endpoint_id")

    api(tenant, "agents", {"name": "taken", "model_endpoint_id": ep["id"]})
    shown = refused(post(web, "/ui/agents", {**other, "environment_id": "", "name": "taken"}))
    assert "already exists" in shown.error("name")
    total = tenant.client.get(tenant.path("/agents")).json()["total"]
    assert total == 1  # nothing half-saved


def test_agent_update_error_saves_nothing(tenant: Tenant, browser: Browser) -> None:
    web = browser(tenant)
    ep = scripted(tenant)
    agent = api(tenant, "agents", {"name": "keep", "model_endpoint_id": ep["id"]})
    # The service renames before it finds the unknown endpoint: the rename must be rolled back.
    r = post(
        web,
        f"/ui/agents/{agent['id']}",
        {
            "name": "renamed",
            "model_endpoint_id": "me_missing",
            "max_rounds": "10",
            "sandbox_flavor": "container",
            "tools_mode": "default",
        },
    )
    assert "no model endpoint" in refused(r).error("model_endpoint_id")
    assert api_get(tenant, "agents", agent["id"])["name"] == "keep"


# --- model endpoints --------------------------------------------------------------------------


def test_endpoint_create_edit_test_delete_and_the_key_stays_out(
    tenant: Tenant, browser: Browser
) -> None:
    web = browser(tenant)
    bodies: list[str] = []
    web.event_hooks["response"].append(lambda r: bodies.append(r.read().decode()))
    key, new_key = "sk-canary-0123456789abcdef", "sk-canary-second-9876543210"
    form = {
        "name": "claude",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "base_url": "",
        "api_key": key,
        "script": "",
    }
    endpoint_id = saved(post(web, "/ui/model-endpoints", form), "/ui/model-endpoints/")
    made = api_get(tenant, "model-endpoints", endpoint_id)
    assert (made["provider"], made["model"], made["api_key_set"]) == (
        "anthropic",
        "claude-sonnet-4-5",
        True,
    )
    shown = page(web, f"/ui/model-endpoints/{endpoint_id}")
    assert shown.by_id["api_key"]["attrs"]["type"] == "password"
    assert "value" not in shown.by_id["api_key"]["attrs"]
    assert "stored" in shown.by_id["api_key"]["attrs"]["placeholder"]
    assert "endpoint-test" in shown.by_id

    # Empty key field on edit: the stored key stays; an error keeps the typed model, not the key.
    r = post(web, f"/ui/model-endpoints/{endpoint_id}", {**form, "api_key": "", "model": "m2"})
    assert saved(r, "/ui/model-endpoints/") == endpoint_id
    assert api_get(tenant, "model-endpoints", endpoint_id)["api_key_set"] is True
    bad = {**form, "api_key": new_key, "base_url": "ftp://nope", "model": "typed-model"}
    shown = refused(post(web, f"/ui/model-endpoints/{endpoint_id}", bad))
    assert "http" in shown.error("base_url")
    assert shown.value("model") == "typed-model"
    assert shown.value("base_url") == "ftp://nope"
    # Removing the key: the anthropic provider needs one, said next to the key field.
    r = post(
        web, f"/ui/model-endpoints/{endpoint_id}", {**form, "api_key": "", "remove_api_key": "on"}
    )
    assert "needs an api_key" in refused(r).error("api_key")

    r = post(web, f"/ui/model-endpoints/{endpoint_id}/delete", {})
    assert r.status_code == 303
    assert tenant.client.get(tenant.path(f"/model-endpoints/{endpoint_id}")).status_code == 404
    assert bodies
    assert not [b for b in bodies if key in b or new_key in b]


def test_scripted_endpoint_script_errors_and_the_test_button_route(
    tenant: Tenant, browser: Browser
) -> None:
    web = browser(tenant)
    form = {"name": "offline", "provider": "scripted", "model": "", "script": "[{oops"}
    shown = refused(post(web, "/ui/model-endpoints", form))
    assert "not valid JSON" in shown.error("script")
    assert shown.value("script") == "[{oops"
    shown = refused(post(web, "/ui/model-endpoints", {**form, "script": '[{"nope": 1}]'}))
    assert shown.error("script")
    r = post(web, "/ui/model-endpoints", {**form, "script": json.dumps([{"text": "ok"}])})
    endpoint_id = saved(r, "/ui/model-endpoints/")

    # What crew.js does for "Test": the API route, with the cookie and the page's CSRF token.
    shown = page(web, f"/ui/model-endpoints/{endpoint_id}")
    url = shown.by_id["endpoint-test"]["attrs"]["data-url"]
    assert url == tenant.path(f"/model-endpoints/{endpoint_id}/test")
    token = meta_token(shown.html)
    headers = {"X-CSRF-Token": token, "X-Requested-With": "fetch"}
    assert web.post(url).status_code == 403  # no token: refused
    verdict = web.post(url, headers=headers)
    assert verdict.status_code == 200, verdict.text
    assert verdict.json()["ok"] is True
    assert verdict.json()["reply"] == "ok"


def test_endpoint_in_use_cannot_be_deleted_and_says_why(tenant: Tenant, browser: Browser) -> None:
    web = browser(tenant)
    ep = scripted(tenant)
    api(tenant, "agents", {"name": "user-of-ep", "model_endpoint_id": ep["id"]})
    shown = refused(post(web, f"/ui/model-endpoints/{ep['id']}/delete", {}), 409)
    assert "user-of-ep" in shown.by_id["form-error"]["text"]
    api_get(tenant, "model-endpoints", ep["id"])


# --- environments -----------------------------------------------------------------------------


def test_environment_variables_secrets_policy(tenant: Tenant, browser: Browser) -> None:
    web = browser(tenant)
    bodies: list[str] = []
    web.event_hooks["response"].append(lambda r: bodies.append(r.read().decode()))
    secret, other_secret = "s3cr3t-canary-value-42", "s3cr3t-canary-typed-again"
    form = {
        "name": "build",
        "variables.0.name": "PLAIN",
        "variables.0.value": "visible",
        "variables.1.name": "TOKEN",
        "variables.1.value": secret,
        "variables.1.secret": "on",
        "variables.2.name": "",
        "variables.2.value": "",
        "setup_script": "pip install x\r\necho done",
        "network_policy": "allowlist",
        "allowed_domains": "pypi.org\n\n*.example.com\n",
    }
    environment_id = saved(post(web, "/ui/environments", form), "/ui/environments/")
    made = api_get(tenant, "environments", environment_id)
    assert [(v["name"], v["secret"], v["value"]) for v in made["variables"]] == [
        ("PLAIN", False, "visible"),
        ("TOKEN", True, None),
    ]
    assert made["setup_script"] == "pip install x\necho done"
    assert made["allowed_domains"] == ["pypi.org", "*.example.com"]

    shown = page(web, f"/ui/environments/{environment_id}")
    assert shown.value("variables.0.value") == "visible"
    assert shown.by_id["variables.1.value"]["attrs"]["type"] == "password"
    assert "stored" in shown.by_id["variables.1.value"]["attrs"]["placeholder"]

    # Edit: the secret sent empty keeps its value; a bad domain is refused next to the field.
    edit = {**form, "variables.1.value": "", "allowed_domains": "pypi.org\n10.0.0.1"}
    shown = refused(post(web, f"/ui/environments/{environment_id}", edit))
    assert "IP address" in shown.error("allowed_domains")
    assert shown.value("allowed_domains") == "pypi.org\n10.0.0.1"
    edit = {**edit, "allowed_domains": "", "network_policy": "none"}
    assert saved(post(web, f"/ui/environments/{environment_id}", edit), "/ui/environments/")
    made = api_get(tenant, "environments", environment_id)
    assert made["variables"][1]["value_set"] is True
    assert made["network_policy"] == "none"

    # Errors land on the row they came from (blank rows in between are skipped).
    bad = {
        "name": "second",
        "variables.0.name": "",
        "variables.0.value": "",
        "variables.3.name": "ACTANA_X",
        "variables.3.value": "1",
        "variables.4.name": "TYPED",
        "variables.4.value": other_secret,
        "variables.4.secret": "on",
        "network_policy": "none",
    }
    shown = refused(post(web, "/ui/environments", bad))
    assert "reserved" in shown.error("variables.3.name")
    assert shown.value("variables.3.name") == "ACTANA_X"
    assert shown.value("variables.4.name") == "TYPED"
    assert "value" not in shown.by_id["variables.4.value"]["attrs"]

    r = post(web, f"/ui/environments/{environment_id}/delete", {})
    assert r.status_code == 303
    assert tenant.client.get(tenant.path(f"/environments/{environment_id}")).status_code == 404
    assert not [b for b in bodies if secret in b or other_secret in b]


# --- skills -----------------------------------------------------------------------------------


def _zip(entries: dict[str, bytes], modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (modes or {}).get(name, 0o100644) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def test_skill_text_create_edit_delete(tenant: Tenant, browser: Browser) -> None:
    web = browser(tenant)
    form = {"name": "Bad_Name", "description": "", "skill_md": "# keep this"}
    shown = refused(post(web, "/ui/skills", form))
    assert "lower-case" in shown.error("name")
    assert shown.error("description")
    assert shown.value("skill_md") == "# keep this"
    r = post(web, "/ui/skills", {**form, "name": "notes", "description": "takes notes"})
    skill_id = saved(r, "/ui/skills/")
    shown = page(web, f"/ui/skills/{skill_id}")
    assert "skill-single" in shown.by_id
    hash_before = shown.by_id["skill-hash"]["text"]
    assert hash_before == api_get(tenant, "skills", skill_id)["content_hash"]
    listed = page(web, "/ui/skills")
    assert "takes notes" in listed.by_id["skills-table"]["text"]

    r = post(
        web,
        f"/ui/skills/{skill_id}",
        {**form, "name": "notes", "description": "d2", "skill_md": "# v2"},
    )
    assert saved(r, "/ui/skills/") == skill_id
    assert page(web, f"/ui/skills/{skill_id}").by_id["skill-hash"]["text"] != hash_before
    assert post(web, f"/ui/skills/{skill_id}/delete", {}).status_code == 303
    assert tenant.client.get(tenant.path(f"/skills/{skill_id}")).status_code == 404


def test_skill_bundle_upload_lists_files_and_refuses_hostile_archives(
    tenant: Tenant, browser: Browser
) -> None:
    web = browser(tenant)
    skill_md = b"---\nname: bundled\ndescription: from the front matter\n---\n# Bundled\n"
    bundle = _zip(
        {"SKILL.md": skill_md, "scripts/run.sh": b"#!/bin/sh\necho hi\n"},
        modes={"scripts/run.sh": 0o100755},
    )
    r = post(web, "/ui/skills/upload", {}, files={"bundle": ("b.zip", bundle, "application/zip")})
    skill_id = saved(r, "/ui/skills/")
    shown = page(web, f"/ui/skills/{skill_id}")
    files = {row["path"]: row for row in api_get(tenant, "skills", skill_id)["files"]}
    table = shown.by_id["skill-files"]["text"]
    assert "scripts/run.sh" in table
    assert files["scripts/run.sh"]["sha256"] in table
    assert files["SKILL.md"]["sha256"] in table
    assert [e["text"] for e in _cells(shown.html, "executable")] == ["no", "yes"]
    assert shown.by_id["skill-md"]["text"] == skill_md.decode()

    # No file, then a bundle escaping its root: refused next to the file input.
    shown = refused(post(web, "/ui/skills/upload", {"bundle_name": "typed"}))
    assert "choose" in shown.error("bundle")
    assert shown.value("bundle_name") == "typed"
    evil = _zip({"SKILL.md": skill_md, "../evil.sh": b"x"})
    r = post(web, "/ui/skills/upload", {}, files={"bundle": ("e.zip", evil, "application/zip")})
    assert refused(r).error("bundle")
    no_name = _zip({"SKILL.md": b"# no front matter"})
    r = post(web, "/ui/skills/upload", {}, files={"bundle": ("n.zip", no_name, "application/zip")})
    assert "needs a name" in refused(r).error("bundle_name")

    # Replacing the bundle changes the files and the hash.
    smaller = _zip({"SKILL.md": skill_md})
    r = post(
        web,
        f"/ui/skills/{skill_id}/bundle",
        {},
        files={"replace_bundle": ("s.zip", smaller, "application/zip")},
    )
    assert saved(r, "/ui/skills/") == skill_id
    assert [f["path"] for f in api_get(tenant, "skills", skill_id)["files"]] == ["SKILL.md"]
    r = post(
        web,
        f"/ui/skills/{skill_id}/bundle",
        {},
        files={"replace_bundle": ("x.zip", b"not a zip", "application/zip")},
    )
    assert refused(r).error("replace_bundle")


def test_bundle_uploads_want_the_csrf_token_and_stay_in_their_workspace(
    tenant: Tenant, other_tenant: Tenant, browser: Browser
) -> None:
    web = browser(tenant)
    bundle = _zip({"SKILL.md": b"---\nname: up\ndescription: d\n---\n# Up\n"})
    theirs = api(other_tenant, "skills", {"name": "theirs", "description": "d", "skill_md": "#"})
    mine = api(tenant, "skills", {"name": "mine", "description": "d", "skill_md": "#"})
    for path, field in (
        ("/ui/skills/upload", "bundle"),
        (f"/ui/skills/{mine['id']}/bundle", "replace_bundle"),
    ):
        for data in ({}, {"csrf_token": "forged"}):
            files = {field: ("b.zip", bundle, "application/zip")}
            r = web.post(path, data=data, files=files)
            assert r.status_code == 403, (path, r.status_code, r.text[:300])
    assert tenant.client.get(tenant.path("/skills")).json()["total"] == 1  # nothing uploaded
    assert api_get(tenant, "skills", mine["id"])["files"] == []  # nothing replaced
    r = post(
        web,
        f"/ui/skills/{theirs['id']}/bundle",
        {},
        files={"replace_bundle": ("b.zip", bundle, "application/zip")},
    )
    assert r.status_code == 404
    assert api_get(other_tenant, "skills", theirs["id"])["files"] == []


def _cells(html: str, css_class: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    class Cells(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "td" and css_class in (dict(attrs).get("class") or "").split():
                found.append({"text": ""})
                self.inside = True

        def handle_endtag(self, tag: str) -> None:
            if tag == "td":
                self.inside = False

        def handle_data(self, data: str) -> None:
            if getattr(self, "inside", False):
                found[-1]["text"] += data

    Cells().feed(html)
    return found


# --- MCP servers ------------------------------------------------------------------------------


def test_mcp_stdio_and_http_with_write_only_headers(tenant: Tenant, browser: Browser) -> None:
    web = browser(tenant)
    bodies: list[str] = []
    web.event_hooks["response"].append(lambda r: bodies.append(r.read().decode()))
    header_secret = "Bearer hdr-canary-5555"
    stdio = {
        "name": "files",
        "transport": "stdio",
        "command": "uvx",
        "args": "mcp-server-files\r\n--root\r\n/tmp\r\n",
        "env": "LOG_LEVEL=debug\nA=b=c",
        "url": "https://ignored.example.com",
        "headers.0.name": "",
        "headers.0.value": "",
    }
    server_id = saved(post(web, "/ui/mcp-servers", stdio), "/ui/mcp-servers/")
    made = api_get(tenant, "mcp-servers", server_id)
    assert made["args"] == ["mcp-server-files", "--root", "/tmp"]
    assert made["env"] == {"LOG_LEVEL": "debug", "A": "b=c"}
    assert made["url"] is None  # only the chosen transport's fields are sent
    shown = page(web, f"/ui/mcp-servers/{server_id}")
    assert "discover-note" in shown.by_id
    assert "mcp-discover" not in shown.by_id

    shown = refused(post(web, "/ui/mcp-servers", {**stdio, "name": "two", "env": "NOEQUALS"}))
    assert "KEY=value" in shown.error("env")
    assert shown.value("env") == "NOEQUALS"
    shown = refused(post(web, "/ui/mcp-servers", {**stdio, "name": "bad__name"}))
    assert shown.error("name")

    # Switch to http with a header; the header value is never shown again.
    http = {
        "name": "files",
        "transport": "http",
        "url": "http://127.0.0.1:9/mcp",
        "headers.0.name": "Authorization",
        "headers.0.value": header_secret,
    }
    assert saved(post(web, f"/ui/mcp-servers/{server_id}", http), "/ui/mcp-servers/")
    made = api_get(tenant, "mcp-servers", server_id)
    assert (made["transport"], made["command"], made["headers_set"]) == (
        "http",
        None,
        ["Authorization"],
    )
    shown = page(web, f"/ui/mcp-servers/{server_id}")
    assert shown.value("headers.0.name") == "Authorization"
    assert "value" not in shown.by_id["headers.0.value"]["attrs"]
    # Keep the stored value (empty field); a bad header name lands on its row.
    keep = {**http, "headers.0.value": "", "headers.1.name": "Host", "headers.1.value": "x"}
    shown = refused(post(web, f"/ui/mcp-servers/{server_id}", keep))
    assert "cannot be set" in shown.error("headers.1.name")
    r = post(web, f"/ui/mcp-servers/{server_id}", {**http, "headers.0.value": ""})
    assert saved(r, "/ui/mcp-servers/")
    assert api_get(tenant, "mcp-servers", server_id)["headers_set"] == ["Authorization"]
    shown = refused(post(web, "/ui/mcp-servers", {**http, "name": "new", "headers.0.value": ""}))
    assert "needs a value" in shown.error("headers.0.value")

    # "Discover tools", as crew.js calls it: nothing listens there, so a clear failure.
    shown = page(web, f"/ui/mcp-servers/{server_id}")
    url = shown.by_id["mcp-discover"]["attrs"]["data-url"]
    headers = {"X-CSRF-Token": meta_token(shown.html), "X-Requested-With": "fetch"}
    verdict = web.post(url, headers=headers)
    assert verdict.status_code == 200, verdict.text
    assert verdict.json()["ok"] is False
    assert verdict.json()["error"]

    assert post(web, f"/ui/mcp-servers/{server_id}/delete", {}).status_code == 303
    assert tenant.client.get(tenant.path(f"/mcp-servers/{server_id}")).status_code == 404
    assert not [b for b in bodies if header_secret in b or "hdr-canary" in b]


# --- the same guarantees on every page ---------------------------------------------------------

KINDS = ["agents", "model-endpoints", "environments", "skills", "mcp-servers"]


def _one_of_each(t: Tenant, tag: str = "") -> dict[str, str]:
    ep = scripted(t, f"ep{tag}")
    made = {
        "model-endpoints": ep["id"],
        "environments": api(t, "environments", {"name": f"env{tag}"})["id"],
        "skills": api(t, "skills", {"name": f"sk{tag}", "description": "d", "skill_md": "#"})["id"],
        "mcp-servers": api(
            t, "mcp-servers", {"name": f"srv{tag}", "transport": "stdio", "command": "x"}
        )["id"],
    }
    made["agents"] = api(t, "agents", {"name": f"ag{tag}", "model_endpoint_id": ep["id"]})["id"]
    return made


@pytest.mark.parametrize("kind", KINDS)
def test_a_post_without_the_csrf_token_is_refused(
    tenant: Tenant, browser: Browser, kind: str
) -> None:
    web = browser(tenant)
    ids = _one_of_each(tenant)
    for path in (f"/ui/{kind}", f"/ui/{kind}/{ids[kind]}", f"/ui/{kind}/{ids[kind]}/delete"):
        for data in ({"name": "x"}, {"name": "x", "csrf_token": "forged"}):
            r = web.post(path, data=data)
            assert r.status_code == 403, (path, r.status_code, r.text[:500])
    assert tenant.client.get(tenant.path(f"/{kind}/{ids[kind]}")).status_code == 200
    assert tenant.client.get(tenant.path(f"/{kind}")).json()["total"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_another_workspaces_objects_are_404(
    tenant: Tenant, other_tenant: Tenant, browser: Browser, kind: str
) -> None:
    web = browser(tenant)
    theirs = _one_of_each(other_tenant, "-b")[kind]
    assert web.get(f"/ui/{kind}/{theirs}").status_code == 404
    assert post(web, f"/ui/{kind}/{theirs}", {"name": "stolen"}).status_code == 404
    assert post(web, f"/ui/{kind}/{theirs}/delete", {}).status_code == 404
    still = api_get(other_tenant, kind, theirs)
    assert still["name"] != "stolen"
    listed = page(web, f"/ui/{kind}")
    assert theirs not in listed.html


def test_hostile_text_is_escaped_on_every_page(tenant: Tenant, browser: Browser) -> None:
    web = browser(tenant)
    ep = api(
        tenant,
        "model-endpoints",
        {"name": "ep", "provider": "openai_compatible", "model": HOSTILE, "base_url": "http://x"},
    )
    env = api(
        tenant,
        "environments",
        {
            "name": "env",
            "setup_script": HOSTILE,
            "variables": [{"name": "V", "value": f'"><img src=x onerror=alert(1)>{HOSTILE}'}],
        },
    )
    skill = api(tenant, "skills", {"name": "sk", "description": HOSTILE, "skill_md": HOSTILE})
    srv = api(
        tenant,
        "mcp-servers",
        {"name": "srv", "transport": "stdio", "command": HOSTILE, "env": {"X": HOSTILE}},
    )
    agent = api(
        tenant, "agents", {"name": "ag", "model_endpoint_id": ep["id"], "system_prompt": HOSTILE}
    )
    # (path, whether the page shows one of the hostile texts)
    paths = [
        ("/ui/agents", False),
        (f"/ui/agents/{agent['id']}", True),
        ("/ui/model-endpoints", True),
        (f"/ui/model-endpoints/{ep['id']}", True),
        ("/ui/environments", False),
        (f"/ui/environments/{env['id']}", True),
        ("/ui/skills", True),
        (f"/ui/skills/{skill['id']}", True),
        ("/ui/mcp-servers", True),
        (f"/ui/mcp-servers/{srv['id']}", True),
    ]
    for path, shows_it in paths:
        html = page(web, path).html
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
        assert ("&lt;script&gt;alert(1)&lt;/script&gt;" in html) is shows_it, path
    shown = page(web, f"/ui/skills/{skill['id']}")
    assert shown.by_id["skill-md"]["text"] == HOSTILE  # the text itself, shown as text
    assert shown.by_id["skill-description"]["text"] == HOSTILE

    # Typed input and the messages that quote it come back escaped too.
    typed = {"name": "env2", "variables.0.name": HOSTILE, "variables.0.value": "v"}
    shown = refused(post(web, "/ui/environments", {**typed, "network_policy": "none"}))
    assert "&lt;script&gt;" in shown.html
    assert "<script>alert" not in shown.html
    assert HOSTILE in shown.error("variables.0.name")  # the text, shown as text
