"""`POST model-endpoints/{id}/test`: one tiny call through the endpoint; 200 with the verdict
(ok, or the upstream's error and status, never with the key); audited without the key."""

from __future__ import annotations

import secrets
import socket
import time

import pytest
from sqlalchemy import select

from actana.crew import model_endpoints
from actana.db.models import AuditEvent, ModelEndpoint, new_id
from actana.providers.redact import REDACTED
from tests.integration.gateway.conftest import answer, fail, hang
from tests.integration.gateway.upstreams import UPSTREAMS, key_for

KEY = "sk-endpoint-test-" + "Kq7" * 12


def _planned_endpoint(context, tenant, key: str | None = KEY) -> str:
    """An endpoint of the test provider (not a provider the API accepts: made in the DB)."""
    with context.database.session() as session:
        row = ModelEndpoint(
            id=new_id("me"), workspace_id=tenant.id, name="planned", provider="test-planned",
            model="m-small",
        )  # fmt: skip
        session.add(row)
        session.flush()
        if key is not None:
            context.secrets.put(
                session,
                workspace_id=tenant.id,
                owner_kind=model_endpoints.OWNER_KIND,
                owner_id=row.id,
                name="api_key",
                value=key,
                actor="test",
            )
        return row.id


def _audits(context, endpoint_id: str) -> list[AuditEvent]:
    with context.database.session() as session:
        rows = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "model_endpoint.tested", AuditEvent.target == endpoint_id
            )
        ).all()
        session.expunge_all()
        return list(rows)


def test_a_scripted_endpoint_answers(tenant):
    ep = tenant.client.post(
        tenant.path("/model-endpoints"),
        json={"name": "s", "provider": "scripted", "script": [{"text": "ok"}]},
    ).json()
    r = tenant.client.post(tenant.path(f"/model-endpoints/{ep['id']}/test"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    assert (body["provider"], body["model"], body["reply"]) == ("scripted", "script", "ok")
    assert body["usage"]["input_tokens"] > 0
    assert body["usage"]["output_tokens"] > 0
    assert body["error"] is None
    assert body["status"] is None
    assert isinstance(body["latency_ms"], int)


def test_the_call_is_tiny_and_carries_the_key(context, tenant, planned):
    endpoint_id = _planned_endpoint(context, tenant)
    planned.plan = [answer("ok", usage=(12, 1))]
    body = tenant.client.post(tenant.path(f"/model-endpoints/{endpoint_id}/test")).json()
    assert body["ok"] is True
    assert body["usage"] == {"input_tokens": 12, "output_tokens": 1, "model_calls": 1}
    (attempt,) = planned.attempts
    assert attempt.api_key == KEY
    assert attempt.call.endpoint.model == "m-small"
    request = attempt.call.request
    assert len(request.messages) == 1
    assert request.tools == []
    assert request.max_tokens == model_endpoints.TRY_MAX_TOKENS
    assert attempt.call.timeout_sec == context.settings.model_endpoint_test_timeout_sec
    (audit,) = _audits(context, endpoint_id)
    assert audit.detail["ok"] is True
    assert audit.actor.startswith("api_key:")


@pytest.mark.parametrize(
    ("message", "status", "expected"),
    [
        (f"invalid x-api-key {KEY}", 401, f"invalid x-api-key {REDACTED}"),
        ("model 'm-small' not found", 404, "model 'm-small' not found"),
        ("rate limited; retry in 20 s", 429, "rate limited; retry in 20 s"),
    ],
)
def test_an_upstream_error_is_the_verdict(context, tenant, planned, message, status, expected):
    endpoint_id = _planned_endpoint(context, tenant)
    planned.plan = [fail(message, status=status, retryable=status == 429)]
    r = tenant.client.post(tenant.path(f"/model-endpoints/{endpoint_id}/test"))
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False
    assert (body["error"], body["status"], body["usage"]) == (expected, status, None)
    assert len(planned.attempts) == 1, "a test is one attempt: no retry"
    assert KEY[:12] not in r.text
    (audit,) = _audits(context, endpoint_id)
    assert (audit.detail["ok"], audit.detail["status"]) == (False, status)
    assert KEY[:12] not in str(audit.detail)


def test_an_upstream_that_never_answers_times_out(context, tenant, planned, monkeypatch):
    monkeypatch.setattr(context.settings, "model_endpoint_test_timeout_sec", 0.5)
    endpoint_id = _planned_endpoint(context, tenant)
    planned.plan = [hang()]
    started = time.monotonic()
    body = tenant.client.post(tenant.path(f"/model-endpoints/{endpoint_id}/test")).json()
    assert time.monotonic() - started < 3
    assert body["ok"] is False
    assert body["error"] == "the upstream did not answer within 0.5 s"
    assert body["latency_ms"] >= 500


def test_only_the_workspaces_own_endpoints(context, tenant, other_tenant, planned):
    endpoint_id = _planned_endpoint(context, tenant)
    r = other_tenant.client.post(other_tenant.path(f"/model-endpoints/{endpoint_id}/test"))
    assert r.status_code == 404
    assert tenant.client.post(tenant.path("/model-endpoints/me_nope/test")).status_code == 404
    r = tenant.client.post(
        tenant.path(f"/model-endpoints/{endpoint_id}/test"), headers={"Authorization": "Bearer x"}
    )
    assert r.status_code == 401
    assert planned.attempts == []


def _endpoint_on(tenant, provider: str, model: str, base_url: str, key: str) -> str:
    r = tenant.client.post(
        tenant.path("/model-endpoints"),
        json={
            "name": f"{provider}-{secrets.token_hex(3)}",
            "provider": provider,
            "model": model,
            "base_url": base_url,
            "api_key": key,
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.mark.parametrize("provider", sorted(UPSTREAMS))
def test_a_real_provider_through_its_fake(tenant, provider):
    key = key_for(provider, secrets.token_hex(20))
    wrong = key_for(provider, secrets.token_hex(20))
    with UPSTREAMS[provider](key) as upstream:
        upstream.plan_text("ok")
        good = _endpoint_on(tenant, provider, upstream.model, upstream.base_url, key)
        bad = _endpoint_on(tenant, provider, upstream.model, upstream.base_url, wrong)
        answer_ = tenant.client.post(tenant.path(f"/model-endpoints/{good}/test")).json()
        refusal = tenant.client.post(tenant.path(f"/model-endpoints/{bad}/test"))
        assert upstream.problems() == []
        assert len(upstream.requests()) == 2
    assert answer_["ok"] is True, answer_
    assert answer_["reply"] == "ok"
    assert answer_["usage"]["output_tokens"] > 0
    body = refusal.json()
    assert body["ok"] is False
    assert body["status"] in (400, 401), body  # Gemini says 400 API_KEY_INVALID
    assert "API key" in body["error"] or "api_key" in body["error"], body
    assert wrong[-12:] not in refusal.text


@pytest.mark.parametrize(
    ("provider", "path", "says"),
    [
        ("anthropic", "", "could not reach the provider at 127.0.0.1:{port}"),
        ("openai_compatible", "/v1", "could not reach the model server at http://127.0.0.1:{port}"),
    ],
)
def test_a_server_that_is_not_there(tenant, provider, path, says):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = _endpoint_on(
        tenant, provider, "some-model", f"http://127.0.0.1:{port}{path}", "sk-" + "k" * 30
    )
    body = tenant.client.post(tenant.path(f"/model-endpoints/{endpoint}/test")).json()
    assert body["ok"] is False
    assert body["status"] is None
    assert body["error"].startswith(says.format(port=port)), body
