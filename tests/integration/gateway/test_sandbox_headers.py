"""Whatever auth a sandbox sends along with a model request (its own `x-api-key`, a second
`Authorization`, `anthropic-version`, `x-goog-api-key`, cookies...) goes nowhere: the upstream
sees the endpoint's key and model, and the SDK's own headers, only."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import httpx
import pytest

from actana.db.models import Run, utcnow
from tests.integration.gateway.test_session_token import TURN, _session_token
from tests.integration.gateway.upstreams import UPSTREAMS, key_for

EVIL = "sandbox-chosen"
HOSTILE_HEADERS = [
    ("x-api-key", f"{EVIL}-x-api-key"),
    ("authorization", f"Bearer {EVIL}-second-authorization"),
    ("anthropic-version", "1999-01-01"),
    ("anthropic-beta", f"{EVIL}-beta"),
    ("x-goog-api-key", f"{EVIL}-goog"),
    ("openai-organization", f"{EVIL}-org"),
    ("openai-project", f"{EVIL}-project"),
    ("proxy-authorization", f"Basic {EVIL}"),
    ("cookie", f"session={EVIL}"),
    ("x-forwarded-for", "203.0.113.9"),
]


def _running_run_on(context, tenant, provider: str, base_url: str, model: str, key: str) -> str:
    ep = tenant.client.post(
        tenant.path("/model-endpoints"),
        json={
            "name": "m",
            "provider": provider,
            "model": model,
            "api_key": key,
            "base_url": base_url,
        },
    )
    assert ep.status_code == 201, ep.text
    agent = tenant.client.post(
        tenant.path("/agents"),
        json={"name": "a", "model_endpoint_id": ep.json()["id"], "sandbox_flavor": "native"},
    ).json()
    run = tenant.client.post(tenant.path(f"/agents/{agent['id']}/runs"), json={"prompt": "x"})
    with context.database.session() as session:
        row = session.get(Run, run.json()["id"])
        row.status = "running"  # as a worker's claim would leave it (no workers here)
        row.deadline_at = utcnow() + timedelta(minutes=5)
        return row.id


@pytest.mark.parametrize("provider", sorted(UPSTREAMS))
def test_the_sandboxs_own_auth_headers_never_reach_the_upstream(
    context, tenant, live_server, provider
):
    key = key_for(provider, secrets.token_hex(20))
    with UPSTREAMS[provider](key) as upstream:
        upstream.plan_text("hello")
        run_id = _running_run_on(context, tenant, provider, upstream.base_url, upstream.model, key)
        token = _session_token(context, run_id)
        headers = [("authorization", f"Bearer {token}"), *HOSTILE_HEADERS]
        r = httpx.post(
            live_server.url + "/sandbox/v1/model",
            content=json.dumps(TURN),
            headers=[("content-type", "application/json"), *headers],
        )
        assert r.status_code == 200, r.text
        assert r.text.splitlines()[-1].startswith('{"type":"turn"'), r.text

        (request,) = upstream.requests()
        assert upstream.problems() == []
        assert upstream.keys_seen() == {key}
        assert upstream.model_of(request) == upstream.model
        sent = json.dumps(request.headers)
        assert EVIL not in sent, request.headers
        assert "1999-01-01" not in sent
        assert "203.0.113.9" not in sent
        assert token not in sent + json.dumps(request.body), "the session token went upstream"


def test_a_sandbox_that_leads_with_its_own_authorization_is_refused(context, tenant, live_server):
    provider = sorted(UPSTREAMS)[0]
    key = key_for(provider, secrets.token_hex(20))
    with UPSTREAMS[provider](key) as upstream:
        run_id = _running_run_on(context, tenant, provider, upstream.base_url, upstream.model, key)
        token = _session_token(context, run_id)
        r = httpx.post(
            live_server.url + "/sandbox/v1/model",
            content=json.dumps(TURN),
            headers=[
                ("content-type", "application/json"),
                ("authorization", f"Bearer {key}"),
                ("authorization", f"Bearer {token}"),
            ],
        )
        assert r.status_code == 401
        assert upstream.requests() == []
