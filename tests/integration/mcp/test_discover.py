"""`POST mcp-servers/{id}/discover` against a real MCP server behind a header-checking gate."""

from __future__ import annotations

import json

from sqlalchemy import select

from actana.db.models import AuditEvent
from tests.integration.mcp.conftest import GatedServer, create_server, free_port


def _audit_text(context) -> str:
    with context.database.session() as session:
        rows = session.scalars(select(AuditEvent)).all()
        return json.dumps([[r.action, r.target, r.detail] for r in rows])


def test_discover_lists_the_tools_with_the_encrypted_header(context, tenant, gated: GatedServer):
    server = create_server(tenant, "time", gated.url, headers=gated.headers())
    assert server["headers_set"] == ["Authorization"]

    r = tenant.client.post(tenant.path(f"/mcp-servers/{server['id']}/discover"))

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True, body
    assert {"get_current_time", "convert_time"} <= {t["name"] for t in body["tools"]}
    tool = next(t for t in body["tools"] if t["name"] == "get_current_time")
    assert tool["description"]
    assert "timezone" in tool["input_schema"]["properties"]
    assert body["server"]["name"] == "mcp-time"
    assert body["latency_ms"] >= 0
    assert gated.saw_canary()
    assert gated.gate.refused == 0
    # Neither the answer, the server's record nor the audit trail ever holds the value.
    listed = tenant.client.get(tenant.path(f"/mcp-servers/{server['id']}")).text
    for text in (r.text, listed, _audit_text(context)):
        assert gated.canary not in text
    assert '"mcp_server.discovered"' in _audit_text(context)


def test_discover_with_a_wrong_header_says_the_credentials_were_refused(tenant, gated: GatedServer):
    wrong = "wrongvalue-" + gated.canary[::-1]
    server = create_server(tenant, "time", gated.url, headers={"Authorization": f"Bearer {wrong}"})

    r = tenant.client.post(tenant.path(f"/mcp-servers/{server['id']}/discover"))

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is False
    assert body["kind"] == "refused"
    assert "refused the credentials (HTTP 401)" in body["error"]
    assert wrong not in r.text
    assert wrong[:12] not in r.text
    assert gated.gate.refused >= 1


def test_discover_an_unreachable_server(tenant):
    url = f"http://127.0.0.1:{free_port()}/mcp"  # nobody listens there
    server = create_server(tenant, "gone", url)

    body = tenant.client.post(tenant.path(f"/mcp-servers/{server['id']}/discover")).json()

    assert body["ok"] is False
    assert body["kind"] == "unreachable"
    assert "'gone' is unreachable" in body["error"]


def test_discover_a_wrong_path_says_404(tenant, gated: GatedServer):
    url = gated.url.removesuffix("/mcp") + "/not-mcp"
    server = create_server(tenant, "time", url, headers=gated.headers())

    body = tenant.client.post(tenant.path(f"/mcp-servers/{server['id']}/discover")).json()

    assert body["ok"] is False
    assert "HTTP 404" in body["error"], body


def test_discover_refuses_stdio_servers(tenant):
    r = tenant.client.post(
        tenant.path("/mcp-servers"),
        json={"name": "local", "transport": "stdio", "command": "mcp-server-time"},
    )
    assert r.status_code == 201, r.text

    d = tenant.client.post(tenant.path(f"/mcp-servers/{r.json()['id']}/discover"))

    assert d.status_code == 422
    assert "stdio servers run inside the sandbox" in d.json()["error"]["message"]


def test_discover_is_scoped_to_the_workspace(tenant, other_tenant, gated: GatedServer):
    server = create_server(tenant, "time", gated.url, headers=gated.headers())

    r = other_tenant.client.post(other_tenant.path(f"/mcp-servers/{server['id']}/discover"))

    assert r.status_code == 404
    assert not gated.gate.seen
