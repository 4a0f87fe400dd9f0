from __future__ import annotations


def test_health_and_ready(live_server, tenant):
    import httpx

    assert httpx.get(live_server.url + "/healthz").json()["status"] == "ok"
    ready = httpx.get(live_server.url + "/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["checks"]["migrations"]["ok"] is True
    r = tenant.client.get(tenant.path())
    assert r.status_code == 200, r.text


def test_openapi_lists_the_crew_routes(live_server):
    import httpx

    spec = httpx.get(live_server.url + "/openapi.json").json()
    paths = spec["paths"]
    for resource in ("model-endpoints", "environments", "skills", "mcp-servers", "agents"):
        assert f"/api/v1/workspaces/{{ws}}/{resource}" in paths
    assert httpx.get(live_server.url + "/docs").status_code == 200


def test_broken_json_names_the_body(tenant):
    r = tenant.client.post(
        tenant.path("/model-endpoints"),
        content=b'{"name": "x",',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "body"
