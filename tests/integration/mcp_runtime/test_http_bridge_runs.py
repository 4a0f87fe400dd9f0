"""Full runs whose agent has an `http` MCP server, on both sandbox flavors: the runtime's bridge
client against the real `/sandbox/v1/mcp` routes, the real reference server `mcp-server-time`
(PyPI; nobody here wrote it) served over streamable HTTP by `mcp-proxy`, behind a gate
(tests/fakes/mcp_gate.py) that wants `Authorization: Bearer <canary>`. The header is stored
encrypted with the server and decrypted only on the trusted side.

- The model calls `mcp__clock__get_current_time`, a bash script calls the same tool through the
  `mcp` shim, and a probe searches everything the sandbox can see for the canary (as the
  gateway's key canary does, with a control string each search must find). The canary is not in
  the sandbox, the run's files, the API's answers or the audit; the gate saw it on every
  upstream request, and never the run's session token or a header of the sandbox's.
- A call the server refuses (an unknown time zone) is a failed step whose error is what the
  model reads next (seen in the request the model's upstream receives); the run succeeds.
- A server whose upstream is down when the run starts costs one warn line naming it; its tools
  are not offered to the model nor listed by the shim; the run succeeds.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from actana.db.models import AuditEvent
from tests.conftest import LiveServer, make_tenant
from tests.integration.gateway.test_key_canary import api_responses, probe, sections
from tests.integration.gateway.upstreams import Upstream, key_for
from tests.integration.gateway.upstreams import openai as openai_upstream
from tests.integration.mcp import conftest as mcp_fixtures
from tests.integration.mcp.conftest import GatedServer, create_server, free_port
from tests.integration.mcp_runtime.conftest import McpRunner
from tests.integration.runs.conftest import (
    assert_well_formed,
    leaked_tokens,
    step_pairs,
    token_hashes,
)

# The time server behind its gate, as the bridge tests have it (tests/integration/mcp).
time_server_url = mcp_fixtures.time_server_url
gated = mcp_fixtures.gated

TOOL = "mcp__clock__get_current_time"
BAD_ZONE = "Mars/Olympus_Mons"


@pytest.fixture
def settings(settings):
    # A cold page cache makes the probe's search of a native sandbox's /usr take a while.
    return settings.model_copy(update={"max_execution_time_sec": 400, "tool_timeout_sec": 360})


@pytest.fixture
def http_container_runner(
    context, worker_server: LiveServer, sandbox_image: str
) -> Iterator[McpRunner]:
    """Container-flavor runs on the default sandbox image: an http server needs nothing in the
    image but the runtime (the bridge client and the shim are standard library)."""
    assert context.settings.sandbox_image == sandbox_image
    tenant = make_tenant(context, worker_server, "mcp-http-container")
    yield McpRunner(context, tenant, "container")
    tenant.client.close()


@pytest.fixture(params=["native", pytest.param("container", marks=pytest.mark.docker)])
def flavor_runner(request: pytest.FixtureRequest, context) -> McpRunner:
    # `context` is asked for here so that the database parameters (sqlite, postgres) apply.
    name = "native_runner" if request.param == "native" else "http_container_runner"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def _check_time(text: str, zone: str) -> None:
    answer = json.loads(text)
    assert answer["timezone"] == zone
    when = datetime.fromisoformat(answer["datetime"])
    assert abs((when - datetime.now(when.tzinfo)).total_seconds()) < 600


def _audit_rows(runner: McpRunner, run_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    with runner.context.database.session() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.target == run_id)).all()
        return [(row.action, row.actor, dict(row.detail or {})) for row in rows]


def _tool_calls(runner: McpRunner, run_id: str) -> set[tuple[str, str, str]]:
    return {
        (d["server"], d["tool"], d["outcome"])
        for action, _, d in _audit_rows(runner, run_id)
        if action == "mcp.tool_called"
    }


# --- 1. The model and a script use the tool; the credential stays on the trusted side ---------


def test_http_server_in_a_run_and_the_canary_stays_out(
    flavor_runner: McpRunner, gated: GatedServer
):
    runner = flavor_runner
    canary = gated.canary
    control = f"probe-control-{secrets.token_hex(12)}"
    server = create_server(runner.tenant, "clock", gated.url, headers=gated.headers())
    assert canary not in json.dumps(server)
    shim_call = "mcp call clock.get_current_time timezone=UTC"
    write = {"path": "assets/control.txt", "content": control}
    search = {"command": probe(canary, control), "timeout_sec": 350}
    script = [
        {"tool_calls": [{"name": TOOL, "args": {"timezone": "UTC"}}]},
        {"tool_calls": [{"name": "bash", "args": {"command": shim_call}}]},
        {"tool_calls": [{"name": "write_file", "args": write}]},
        {"tool_calls": [{"name": "bash", "args": search}]},
        {"text": "it is time"},
    ]
    agent = runner.agent(script, mcp_server_ids=[server["id"]])
    final = runner.wait(runner.start(agent)["id"])
    lines = runner.stored(final)
    assert final["status"] == "succeeded", (final, lines[-5:])
    assert final["message"] == "it is time"
    assert_well_formed(lines)
    assert not [line for line in lines if line["type"] == "log" and line["level"] == "warn"]

    steps = step_pairs(lines)
    shim = steps.pop("shim-1")
    model_call, bash_call, wrote, searched = steps.values()

    # The model's native call: running, then succeeded with the time in UTC.
    assert [s["status"] for s in model_call] == ["running", "succeeded"]
    assert model_call[0]["name"] == TOOL
    assert model_call[0]["args"] == {"timezone": "UTC"}
    _check_time(model_call[1]["result"]["text"], "UTC")

    # The script's call through the shim: the answer on the bash step's stdout, and the call a
    # step of its own.
    assert bash_call[-1]["status"] == "succeeded", bash_call
    assert bash_call[-1]["result"]["exit_code"] == 0, bash_call[-1]
    _check_time(bash_call[-1]["result"]["stdout"], "UTC")
    assert [s["status"] for s in shim] == ["running", "succeeded"]
    assert shim[0]["name"] == TOOL
    assert shim[0]["args"] == {"timezone": "UTC"}

    # The probe: no search finds the canary, though each finds the control.
    assert wrote[-1]["status"] == "succeeded", wrote
    assert searched[-1]["status"] == "succeeded", searched
    result = searched[-1]["result"]
    assert not result["stdout_truncated"]
    found = sections(result["stdout"])
    assert list(found) == ["fs", "env", "proc canary", "proc control", "end"], found
    assert len(found["fs"]) == 1, f"the canary (or the control) is in other files: {found['fs']}"
    assert found["fs"][0].endswith("/assets/control.txt"), found["fs"]
    assert found["env"] == ["PROBE_CONTROL"], found["env"]
    assert found["proc canary"] == [], found["proc canary"]
    assert found["proc control"], "the /proc search should find the control in grep's environ"
    assert canary not in json.dumps(lines)

    # Nowhere on the trusted side's record: the run's files, the API's answers, the audit.
    run_dir = runner.run_dir(final)
    stored = {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert {"stream.jsonl", "steps.json", "result.json"} <= set(stored)
    for name, content in stored.items():
        assert canary.encode() not in content, name
    assert canary not in api_responses(runner, final["id"])
    with runner.context.database.session() as session:
        audits = session.scalars(select(AuditEvent)).all()
        assert not [a.action for a in audits if canary in f"{a.target} {a.detail}"]
    calls = [d for action, _, d in _audit_rows(runner, final["id"]) if action == "mcp.tool_called"]
    assert [(d["server"], d["tool"], d["outcome"]) for d in calls] == [
        ("clock", "get_current_time", "ok"),  # the model's call
        ("clock", "get_current_time", "ok"),  # the shim's
    ]

    # The gate: the canary on every request it let through, and nothing of the sandbox's.
    assert gated.saw_canary()
    seen = gated.gate.headers_seen()
    assert gated.gate.refused == 0, seen
    assert all(h.get("authorization") == f"Bearer {canary}" for h in seen)
    assert leaked_tokens(json.dumps(seen), token_hashes(runner.context, final["id"])) == []
    for headers in seen:
        # The sandbox's channel client is urllib talking to `localhost`; the upstream session
        # is the trusted side's httpx client, with the gate's own address.
        assert headers["user-agent"].startswith("python-httpx/"), headers
        assert headers["host"].startswith("127.0.0.1:"), headers


# --- 2 and 3: a model whose requests we read (the OpenAI fake), to see what it is told ---------


def _openai_agent(runner: McpRunner, upstream: Upstream, key: str, servers: list[str]) -> str:
    t = runner.tenant
    ep = t.client.post(
        t.path("/model-endpoints"),
        json={
            "name": "openai-mcp",
            "provider": upstream.provider,
            "model": upstream.model,
            "api_key": key,
            "base_url": upstream.base_url,
        },
    )
    assert ep.status_code == 201, ep.text
    r = t.client.post(
        t.path("/agents"),
        json={
            "name": "mcp-http",
            "model_endpoint_id": ep.json()["id"],
            "sandbox_flavor": runner.flavor,
            "mcp_server_ids": servers,
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _tool_answers(body: dict[str, Any]) -> dict[str, str]:
    """tool_call_id -> the content of the `tool` message answering it, in a model request."""
    return {
        m["tool_call_id"]: m["content"] if isinstance(m["content"], str) else json.dumps(m)
        for m in body["messages"]
        if m["role"] == "tool"
    }


def _offered(body: dict[str, Any]) -> set[str]:
    return {tool["function"]["name"] for tool in body.get("tools", [])}


def test_a_refused_call_is_a_failed_step_the_model_reads(
    flavor_runner: McpRunner, gated: GatedServer
):
    runner = flavor_runner
    key = key_for("openai", secrets.token_hex(16))
    server = create_server(runner.tenant, "clock", gated.url, headers=gated.headers())
    with openai_upstream(key) as upstream:
        upstream.plan_tool(TOOL, {"timezone": BAD_ZONE})
        upstream.plan_tool(TOOL, {"timezone": "UTC"})
        upstream.plan_text("recovered")
        final = runner.wait(
            runner.start(_openai_agent(runner, upstream, key, [server["id"]]))["id"]
        )
        requests = upstream.requests()
        assert upstream.problems() == []

    lines = runner.stored(final)
    assert final["status"] == "succeeded", (final, lines[-5:])
    assert final["message"] == "recovered"
    assert_well_formed(lines)
    bad, good = step_pairs(lines).values()

    # The server's verdict (isError) is a failed step with its reason...
    assert [s["status"] for s in bad] == ["running", "failed"]
    assert bad[0]["args"] == {"timezone": BAD_ZONE}
    error = bad[1]["error"]
    assert BAD_ZONE in error, error
    # ...and exactly what the model is told in its next request, as that call's answer.
    assert len(requests) == 3
    first_call_id = _tool_call_ids(requests[1].body)[0]
    told = _tool_answers(requests[1].body)[first_call_id]
    assert BAD_ZONE in told, told
    assert error in told, (error, told)  # the provider marks it as an error around it

    # The run went on: the next call succeeded, and the model read its answer too.
    assert [s["status"] for s in good] == ["running", "succeeded"]
    _check_time(good[1]["result"]["text"], "UTC")
    second_call_id = _tool_call_ids(requests[2].body)[1]
    _check_time(json.loads(_tool_answers(requests[2].body)[second_call_id])["text"], "UTC")

    assert _tool_calls(runner, final["id"]) == {
        ("clock", "get_current_time", "tool_error"),
        ("clock", "get_current_time", "ok"),
    }


def _tool_call_ids(body: dict[str, Any]) -> list[str]:
    """The ids of the assistant's tool calls in a model request, in order."""
    return [
        call["id"]
        for m in body["messages"]
        if m["role"] == "assistant"
        for call in m.get("tool_calls") or []
    ]


def test_an_upstream_down_at_start_costs_one_warn_line(
    flavor_runner: McpRunner, gated: GatedServer
):
    runner = flavor_runner
    key = key_for("openai", secrets.token_hex(16))
    clock = create_server(runner.tenant, "clock", gated.url, headers=gated.headers())
    down = create_server(runner.tenant, "down", f"http://127.0.0.1:{free_port()}/mcp")
    with openai_upstream(key) as upstream:
        upstream.plan_tool("bash", {"command": "mcp list"})
        upstream.plan_text("done without it")
        agent = _openai_agent(runner, upstream, key, [clock["id"], down["id"]])
        final = runner.wait(runner.start(agent)["id"])
        requests = upstream.requests()
        assert upstream.problems() == []

    lines = runner.stored(final)
    assert final["status"] == "succeeded", (final, lines[-5:])
    assert final["message"] == "done without it"
    assert_well_formed(lines)

    # One warn line, naming the server and why; nothing else about it.
    about = [line for line in lines if line["type"] == "log" and "'down'" in line["message"]]
    assert len(about) == 1, about
    assert about[0]["level"] == "warn"
    assert "left out" in about[0]["message"]
    # The control plane's own message, not its JSON envelope.
    message = about[0]["message"]
    assert message.startswith("MCP server 'down' left out: MCP server 'down' is unreachable ("), (
        message
    )
    assert message.endswith("(HTTP 502)"), message
    assert "{" not in message, message
    assert [line for line in lines if line["type"] == "log" and line["level"] == "warn"] == about

    # Its tools are offered to the model on no turn; the other server's are.
    assert len(requests) == 2
    for request in requests:
        offered = _offered(request.body)
        assert TOOL in offered, offered
        assert not [name for name in offered if name.startswith("mcp__down__")], offered
    # Nor does the shim list them.
    (listing,) = [pair[-1] for pair in step_pairs(lines).values()]
    assert listing["status"] == "succeeded", listing
    listed = listing["result"]["stdout"]
    assert "clock" in listed, listed
    assert "get_current_time" in listed, listed
    assert "down" not in listed, listed

    outcomes = {
        (a, d.get("server"), d.get("outcome")) for a, _, d in _audit_rows(runner, final["id"])
    }
    assert ("mcp.tools_listed", "down", "unreachable") in outcomes, outcomes
    assert ("mcp.tools_listed", "clock", "ok") in outcomes, outcomes
