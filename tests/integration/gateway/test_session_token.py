"""A run's session token opens the model gateway for that run only, and only while it runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from actana.db.models import Run, utcnow
from actana.runs import handover
from actana.runs.channel import RunChannel, create_sandbox_app
from actana.security import otp
from tests.integration.runs.test_tokens import _running_run

TURN = {"system": "s", "messages": [{"role": "user", "text": "x"}]}


def _session_token(context, run_id: str) -> str:
    with context.database.session() as session:
        return otp.issue_session_token(session, run_id, not_after=utcnow() + timedelta(hours=1))


def _post(url: str, token: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(
        url + "/sandbox/v1/model", json=TURN, headers={"Authorization": f"Bearer {token}"}, **kwargs
    )


def _second_run(context, run_a: str) -> str:
    """Another running run of the same agent."""
    with context.database.session() as session:
        row = session.get(Run, run_a)
        run_b = Run(
            **{c.name: getattr(row, c.name) for c in Run.__table__.columns}
            | {"id": "run_" + "b" * 20}
        )
        session.add(run_b)
        return run_b.id


@pytest.mark.parametrize("status", ["succeeded", "failed", "timeout", "cancelled"])
def test_refused_once_the_run_ended_even_before_revocation(context, tenant, live_server, status):
    run_id = _running_run(context, tenant)
    token = _session_token(context, run_id)
    assert _post(live_server.url, token).status_code == 200
    with context.database.session() as session:
        session.get(Run, run_id).status = status  # ended; the worker has not revoked yet
    refused = _post(live_server.url, token)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "invalid, expired or already used token"


def test_refused_for_any_other_run(context, tenant):
    run_a = _running_run(context, tenant)
    run_b = _second_run(context, run_a)
    token_a, token_b = _session_token(context, run_a), _session_token(context, run_b)

    async def scenario() -> dict[str, int]:
        channel = RunChannel(create_sandbox_app(context), run_b)
        await channel.start()
        try:
            transport = httpx.AsyncHTTPTransport(uds=str(channel.socket_path))
            async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
                codes = {}
                for name, token in (("a on b", token_a), ("b on b", token_b)):
                    r = await client.post(
                        "/sandbox/v1/model",
                        json=TURN,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    codes[name] = r.status_code
                return codes
        finally:
            await channel.stop()

    assert asyncio.run(scenario()) == {"a on b": 401, "b on b": 200}
    with context.database.session() as session:
        calls = {run: session.get(Run, run).model_calls for run in (run_a, run_b)}
    assert calls == {run_a: 0, run_b: 1}, "A's refused call must not be counted anywhere"


def test_refused_when_it_is_a_one_time_token(context, tenant, live_server):
    run_id = _running_run(context, tenant)
    with context.database.session() as session:
        tokens = otp.issue_run_tokens(session, run_id, not_after=utcnow() + timedelta(hours=1))
    for token in tokens.values():
        assert _post(live_server.url, token).status_code == 401


def test_a_real_runs_token_is_refused_after_it_ended(runner, monkeypatch, worker_server):
    issued: list[str] = []
    real = handover.issue_session_token

    def spy(*args: Any, **kwargs: Any) -> str:
        issued.append(real(*args, **kwargs))
        return issued[-1]

    monkeypatch.setattr(handover, "issue_session_token", spy)
    agent = runner.agent([{"text": "done"}])
    final = runner.wait(runner.start(agent)["id"])
    assert final["status"] == "succeeded", final
    assert final["usage"]["model_calls"] == 1
    assert len(issued) == 1
    assert _post(worker_server.url, issued[0]).status_code == 401
