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
