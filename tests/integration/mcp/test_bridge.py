"""The MCP bridge over a run's channel, to a real MCP server behind a header-checking gate.

The calls are the runtime's: `/sandbox/v1/mcp/...` over the run channel's unix socket with a
session token of that run. The credential the gate wants is stored encrypted with the server;
the tests prove it reached the gate, and nowhere else.

Two settings: a run channel served for a run marked running (fast, independent of the
runtime), and a real native run kept alive by a long `sleep` while the test calls its channel.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from actana.db.models import AuditEvent, Run, utcnow
from actana.runs.channel import DIR_PREFIX, RunChannel, create_sandbox_app
from actana.security import otp
from tests.integration.mcp.conftest import GatedServer, create_server, free_port
from tests.integration.runs.conftest import Runner, read_to_terminal, until_step_running

WRONG_CREDENTIAL = "Bearer not-the-canary"


def _session_token(context: Any, run_id: str) -> str:
    with context.database.session() as session:
        return otp.issue_session_token(session, run_id, not_after=utcnow() + timedelta(hours=1))


def _other_running_run(context: Any, run_id: str) -> str:
    """A second running run of the same agent; its session token."""
    other = "run_" + "o" * 20
    with context.database.session() as session:
        row = session.get(Run, run_id)
        assert row is not None
        columns = {c.name: getattr(row, c.name) for c in Run.__table__.columns}
        session.add(Run(**columns | {"id": other}))
    return _session_token(context, other)


def _servers(tenant: Any, gated: GatedServer) -> list[str]:
    r = tenant.client.post(
        tenant.path("/mcp-servers"),
        json={"name": "local", "transport": "stdio", "command": "mcp-server-time"},
    )
    assert r.status_code == 201, r.text
    wrong = {"Authorization": WRONG_CREDENTIAL}
    return [
        create_server(tenant, "time", gated.url, headers=gated.headers())["id"],
        create_server(tenant, "badcred", gated.url, headers=wrong)["id"],
        create_server(tenant, "gone", f"http://127.0.0.1:{free_port()}/mcp")["id"],
        r.json()["id"],
    ]


def _exercise(socket_path: Path, token: str, other_token: str) -> list[str]:
    """Every call a sandbox can make, and what it must get; returns every answer's text."""
    transport = httpx.HTTPTransport(uds=str(socket_path))
    # Headers a hostile sandbox adds; the bridge must not pass them on.
    auth = {"Authorization": f"Bearer {token}", "X-Sandbox-Leak": "1", "Cookie": "sandbox=1"}
    answers: list[str] = []
    with httpx.Client(transport=transport, base_url="http://sandbox", timeout=30) as channel:

        def call(server: str, body: dict[str, Any], headers: dict[str, str] = auth) -> Any:
            r = channel.post(f"/sandbox/v1/mcp/{server}/call", json=body, headers=headers)
            answers.append(r.text)
            return r

        listed = channel.get("/sandbox/v1/mcp/time/tools", headers=auth)
        answers.append(listed.text)
        assert listed.status_code == 200, listed.text
        tools = {t["name"]: t for t in listed.json()["tools"]}
        assert {"get_current_time", "convert_time"} <= set(tools)
        assert tools["get_current_time"]["input_schema"]["type"] == "object"

        ok = call("time", {"tool": "get_current_time", "arguments": {"timezone": "UTC"}})
        assert ok.status_code == 200, ok.text
        result = ok.json()
        assert result["is_error"] is False
        assert result["content"][0]["type"] == "text"
        assert json.loads(result["content"][0]["text"])["timezone"] == "UTC"

        args = {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
        converted = call("time", {"tool": "convert_time", "arguments": args})
        assert converted.status_code == 200, converted.text
        assert "Asia/Tokyo" in converted.json()["content"][0]["text"]

        # The server's own verdict on bad arguments is a result, not a bridge failure.
        bad = call("time", {"tool": "get_current_time", "arguments": {"timezone": "Nowhere/X"}})
        assert bad.status_code == 200, bad.text
        assert bad.json()["is_error"] is True

        # The sandbox names a tool and its arguments; nothing else.
        extra = call("time", {"tool": "get_current_time", "arguments": {}, "url": "http://x"})
        assert extra.status_code == 422
        assert "url: unknown field" in extra.json()["error"]["message"]

        # Tokens: garbage, and another running run's valid token on this run's channel.
        for wrong in ("nonsense", other_token):
            r = call("time", {"tool": "get_current_time"}, {"Authorization": f"Bearer {wrong}"})
            assert r.status_code == 401, r.text
        assert channel.get("/sandbox/v1/mcp/time/tools").status_code == 401

        unknown = call("nope", {"tool": "x"})
        assert unknown.status_code == 404
        assert "no MCP server named 'nope' is attached" in unknown.json()["error"]["message"]
        stdio = call("local", {"tool": "get_current_time"})
        assert stdio.status_code == 404
        assert "is a stdio server" in stdio.json()["error"]["message"]

        refused = call("badcred", {"tool": "get_current_time"})
        assert refused.status_code == 502
        assert "refused the credentials (HTTP 401)" in refused.json()["error"]["message"]
        down = call("gone", {"tool": "get_current_time"})
        assert down.status_code == 502
        assert "'gone' is unreachable" in down.json()["error"]["message"]
    return answers


def _check_gate(gated: GatedServer, token: str) -> None:
    """The gate saw the canary, nothing the sandbox sent, and one session for the whole run,
    closed (DELETE) when the run's channel stopped."""
    assert gated.saw_canary()
    headers_seen = gated.gate.headers_seen()
    for headers in headers_seen:
        assert "x-sandbox-leak" not in headers
        assert "cookie" not in headers
        assert token not in json.dumps(headers)
    admitted = [h for h in headers_seen if h.get("authorization") == f"Bearer {gated.canary}"]
    sessions = {h["mcp-session-id"] for h in admitted if "mcp-session-id" in h}
    assert len(sessions) == 1, sessions
    admitted_methods = [
        m for (m, _), h in zip(gated.gate.requests, headers_seen, strict=True) if h in admitted
    ]
    assert admitted_methods.count("DELETE") == 1, gated.gate.requests


def _check_nowhere_else(context: Any, run_id: str, gated: GatedServer, texts: list[str]) -> None:
    """The credentials appear in no answer, log or audit row; the audit has every call."""
    with context.database.session() as session:
        audits = session.scalars(select(AuditEvent).where(AuditEvent.target == run_id)).all()
        audit_rows = [(a.action, a.actor, a.detail) for a in audits]
    for text in [*texts, json.dumps(audit_rows)]:
        assert gated.canary not in text
        assert WRONG_CREDENTIAL not in text
    calls = [d for action, _, d in audit_rows if action == "mcp.tool_called"]
    outcomes = {(d["server"], d["tool"], d["outcome"]) for d in calls}
    assert ("time", "get_current_time", "ok") in outcomes
    assert ("time", "get_current_time", "tool_error") in outcomes
    assert ("badcred", "get_current_time", "refused") in outcomes
    assert ("gone", "get_current_time", "unreachable") in outcomes
    assert ("nope", "x", "not_found") in outcomes
    assert all("arguments" not in d and d["duration_ms"] >= 0 for d in calls)
    assert any(action == "mcp.tools_listed" for action, _, _ in audit_rows)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop in a thread of its own, as a worker's, to serve a run channel on."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_bridge_over_a_run_channel(context, tenant, gated: GatedServer, loop, caplog):
    caplog.set_level(logging.DEBUG)
    ep = tenant.client.post(
        tenant.path("/model-endpoints"),
        json={"name": "m", "provider": "scripted", "script": [{"text": "hi"}]},
    ).json()
    agent = tenant.client.post(
        tenant.path("/agents"),
        json={
            "name": "a",
            "model_endpoint_id": ep["id"],
            "sandbox_flavor": "native",
            "mcp_server_ids": _servers(tenant, gated),
        },
    ).json()
    run_id = tenant.client.post(
        tenant.path(f"/agents/{agent['id']}/runs"), json={"prompt": "x"}
    ).json()["id"]
    with context.database.session() as session:
        row = session.get(Run, run_id)
        row.status = "running"  # as a worker's claim leaves it (no workers on this server)
        row.deadline_at = utcnow() + timedelta(minutes=5)
    token = _session_token(context, run_id)
    other_token = _other_running_run(context, run_id)

    channel = RunChannel(create_sandbox_app(context), run_id)
    asyncio.run_coroutine_threadsafe(channel.start(), loop).result(10)
    try:
        answers = _exercise(channel.socket_path, token, other_token)
    finally:
        asyncio.run_coroutine_threadsafe(channel.stop(), loop).result(10)

    _check_gate(gated, token)
    _check_nowhere_else(context, run_id, gated, [*answers, caplog.text])


def test_bridge_during_a_real_run(runner: Runner, gated: GatedServer, caplog):
    caplog.set_level(logging.DEBUG)
    script = [
        {"tool_calls": [{"name": "bash", "args": {"command": "sleep 100"}}]},
        {"text": "the sleep ended early"},
    ]
    servers = _servers(runner.tenant, gated)
    agent = runner.agent(script, mcp_server_ids=servers, timeout_sec=120)
    run = runner.start(agent)
    lines = runner.events(run["id"])
    seen: list[dict[str, Any]] = []
    until_step_running(lines, seen)

    token = _session_token(runner.context, run["id"])
    other_token = _other_running_run(runner.context, run["id"])
    sockets = list(Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}{run['id']}-*/channel.sock"))
    assert len(sockets) == 1, sockets
    answers = _exercise(sockets[0], token, other_token)

    runner.tenant.client.post(runner.tenant.path(f"/runs/{run['id']}/cancel"))
    terminal = read_to_terminal(lines, seen)
    assert terminal["type"] == "error"
    assert terminal["code"] == "cancelled"

    _check_gate(gated, token)
    run_dir = runner.run_dir(run)
    stored = [
        (run_dir / name).read_text() for name in ("stream.jsonl", "steps.json", "result.json")
    ]
    _check_nowhere_else(runner.context, run["id"], gated, [*answers, *stored, caplog.text])
