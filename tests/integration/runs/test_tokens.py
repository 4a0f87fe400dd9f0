"""One-time tokens: single use, bound to run and purpose, expiring, and one 401 for all."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from actana.db.models import AuditEvent, Run, RunToken, utcnow
from actana.security import otp


def _running_run(context, tenant) -> str:
    ep = tenant.client.post(
        tenant.path("/model-endpoints"),
        json={"name": "m", "provider": "scripted", "script": [{"text": "hi"}]},
    ).json()
    agent = tenant.client.post(
        tenant.path("/agents"),
        json={"name": "a", "model_endpoint_id": ep["id"], "sandbox_flavor": "native"},
    ).json()
    run = tenant.client.post(
        tenant.path(f"/agents/{agent['id']}/runs"), json={"prompt": "x"}
    ).json()
    with context.database.session() as session:
        row = session.get(Run, run["id"])
        row.status = "running"  # as a worker's claim would leave it (no workers on this server)
        row.deadline_at = utcnow() + timedelta(minutes=5)
    return str(run["id"])


def _issue(context, run_id: str) -> dict[str, str]:
    with context.database.session() as session:
        return otp.issue_run_tokens(session, run_id, not_after=utcnow() + timedelta(hours=1))


def _redeem(context, token: str, purpose: str, run_id: str | None = None) -> str | None:
    with context.database.session() as session:
        return otp.redeem(session, token, purpose, run_id=run_id)


def test_tokens_are_single_use_and_bound(context, tenant):
    run_id = _running_run(context, tenant)
    tokens = _issue(context, run_id)
    assert len({*tokens.values()}) == 3
    assert all(len(t) >= 43 for t in tokens.values())  # 256 bits, URL-safe base64
    assert _redeem(context, tokens["setup"], "run") is None  # wrong purpose
    assert _redeem(context, tokens["setup"], "setup", run_id="run_" + "0" * 20) is None  # wrong run
    assert _redeem(context, tokens["setup"], "setup", run_id=run_id) == run_id
    assert _redeem(context, tokens["setup"], "setup") is None  # reuse
    with context.database.session() as session:
        session.execute(
            update(RunToken)
            .where(RunToken.purpose == "run")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert _redeem(context, tokens["run"], "run") is None  # expired
    with context.database.session() as session:
        hashes = set(session.scalars(select(RunToken.token_sha256)))
        audit = list(session.scalars(select(AuditEvent).where(AuditEvent.action.like("otp.%"))))
    for token in tokens.values():
        assert token not in hashes
        assert otp.token_digest(token) in hashes
    reasons = [e.detail.get("reason") for e in audit if e.action == "otp.refused"]
    assert "token is for setup" in reasons
    assert "already used" in reasons
    assert "expired" in reasons
    everything = " ".join(str(e.detail) + str(e.target) for e in audit)
    assert not any(token in everything for token in tokens.values())


def test_fifty_concurrent_redemptions_one_winner(context, tenant):
    run_id = _running_run(context, tenant)
    token = _issue(context, run_id)["upload"]
    barrier = threading.Barrier(50)
    results: list[str | None] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        got = _redeem(context, token, "upload")
        with lock:
            results.append(got)

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 50
    assert results.count(run_id) == 1
    assert results.count(None) == 49


def test_every_failure_is_the_same_401(context, tenant, live_server):
    run_id = _running_run(context, tenant)
    tokens = _issue(context, run_id)
    url = live_server.url + "/sandbox/v1"
    with httpx.Client() as client:
        ok = client.get(url + "/env", headers={"Authorization": f"Bearer {tokens['setup']}"})
        assert ok.status_code == 200, ok.text
        attempts = {
            "no header": client.get(url + "/env"),
            "garbage": client.get(url + "/env", headers={"Authorization": "Bearer nope"}),
            "reused": client.get(
                url + "/env", headers={"Authorization": f"Bearer {tokens['setup']}"}
            ),
            "wrong purpose": client.get(
                url + "/env", headers={"Authorization": f"Bearer {tokens['run']}"}
            ),
            "upload on config": client.get(
                url + "/config", headers={"Authorization": f"Bearer {tokens['upload']}"}
            ),
        }
        with context.database.session() as session:
            session.execute(
                update(RunToken)
                .where(RunToken.purpose == "run")
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        attempts["expired"] = client.get(
            url + "/config", headers={"Authorization": f"Bearer {tokens['run']}"}
        )
    bodies = {name: (r.status_code, r.content) for name, r in attempts.items()}
    assert len(set(bodies.values())) == 1, bodies
    status, body = next(iter(bodies.values()))
    assert status == 401
    assert b"token" in body


def test_session_token_dies_with_the_run(context, tenant, live_server):
    run_id = _running_run(context, tenant)
    tokens = _issue(context, run_id)
    url = live_server.url + "/sandbox/v1"
    with httpx.Client() as client:
        config = client.get(url + "/config", headers={"Authorization": f"Bearer {tokens['run']}"})
        assert config.status_code == 200, config.text
        body = config.json()
        assert body["run_id"] == run_id
        assert body["prompt"] == "x"
        assert "api_key" not in config.text
        session_token = body["session_token"]
        request = {"system": "s", "messages": [{"role": "user", "text": "x"}]}
        turn = client.post(
            url + "/model", json=request, headers={"Authorization": f"Bearer {session_token}"}
        )
        assert turn.status_code == 200, turn.text
        assert turn.text.strip().splitlines()[-1].startswith('{"type":"turn"')
        with context.database.session() as session:
            otp.revoke_run_tokens(session, run_id)
        again = client.post(
            url + "/model", json=request, headers={"Authorization": f"Bearer {session_token}"}
        )
        assert again.status_code == 401
