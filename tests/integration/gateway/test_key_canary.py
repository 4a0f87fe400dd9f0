"""The key canary: a run whose endpoint key is a unique string, against a provider's fake
upstream. The upstream receives exactly that key; the sandbox never sees it, which the "agent"
(the fake model, asking for bash tool calls) checks itself by searching everything it can see:
the whole filesystem, its environment, and every process's environ and command line. And the
canary is in no stored file of the run, no server log line (every logger at DEBUG, the SDKs'
included), no API response, no audit event, and in nothing the upstream was sent besides the
key header.

The search must not carry the canary itself (a grep's argv is in /proc), so the needle is
handed to grep through a pipe, built from hex escapes. A control string, written to a file and
exported to the probes' environment, proves that each search can find what is there.
Both flavors: native, and container (Docker; skipped without a daemon).
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from actana.db.models import AuditEvent
from tests.integration.gateway.upstreams import UPSTREAMS, Upstream, key_for
from tests.integration.runs.conftest import Runner, finished_steps

PROVIDERS = sorted(UPSTREAMS)


@pytest.fixture
def settings(settings):
    # A cold page cache makes the search of a native sandbox's /usr take a while.
    return settings.model_copy(update={"max_execution_time_sec": 400, "tool_timeout_sec": 360})


def _escaped(text: str) -> str:
    return "".join(f"\\x{byte:02x}" for byte in text.encode())


def probe(canary: str, control: str) -> str:
    """The bash command: four searches, each after a `== name` line."""
    needles = '<(printf \'%b\\n%b\\n\' "$K" "$C")'
    return "; ".join(
        [
            f"K='{_escaped(canary)}'",
            f"C='{_escaped(control)}'",
            'export PROBE_CONTROL="$(printf \'%b\' "$C")"',
            "echo '== fs'",
            f"grep -rlF -f {needles} / --exclude-dir=proc --exclude-dir=sys 2>/dev/null",
            "echo '== env'",
            f"env | grep -F -f {needles} | cut -d= -f1",
            "echo '== proc canary'",
            "grep -lF -f <(printf '%b' \"$K\") /proc/*/environ /proc/*/cmdline 2>/dev/null",
            "echo '== proc control'",
            "grep -lF -f <(printf '%b' \"$C\") /proc/*/environ 2>/dev/null",
            "echo '== end'",
        ]
    )


def sections(stdout: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith("== "):
            current = line[3:]
            found[current] = []
        elif current is not None and line.strip():
            found[current].append(line.strip())
    return found


def agent_on(runner: Runner, upstream: Upstream, key: str, flavor: str) -> str:
    t = runner.tenant
    ep = t.client.post(
        t.path("/model-endpoints"),
        json={
            "name": f"{upstream.provider}-canary",
            "provider": upstream.provider,
            "model": upstream.model,
            "api_key": key,
            "base_url": upstream.base_url,
        },
    )
    assert ep.status_code == 201, ep.text
    assert key not in ep.text
    r = t.client.post(
        t.path("/agents"),
        json={
            "name": "canary",
            "model_endpoint_id": ep.json()["id"],
            "sandbox_flavor": flavor,
            "system_prompt": "Look for the canary.",
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def api_responses(runner: Runner, run_id: str) -> str:
    """Every API answer about the run and its crew, concatenated."""
    t = runner.tenant
    paths = [
        f"/runs/{run_id}",
        "/runs",
        f"/runs/{run_id}/files",
        f"/runs/{run_id}/stream.jsonl",
        f"/runs/{run_id}/steps.json",
        f"/runs/{run_id}/result.json",
        "/agents",
        "/model-endpoints",
    ]
    texts = []
    for path in paths:
        r = t.client.get(t.path(path))
        assert r.status_code == 200, (path, r.text)
        texts.append(r.text)
    for item in t.client.get(t.path(f"/runs/{run_id}/files")).json():
        texts.append(t.client.get(t.path(f"/runs/{run_id}/files/{item['name']}")).text)
    texts.append("\n".join(json.dumps(line) for line in runner.events(run_id)))
    return "\n".join(texts)


def check_canary(runner: Runner, provider: str, flavor: str, caplog: Any) -> None:
    canary = key_for(provider, f"CANARY{secrets.token_hex(20)}")
    control = f"probe-control-{secrets.token_hex(12)}"
    caplog.set_level(logging.DEBUG)
    with UPSTREAMS[provider](canary) as upstream:
        upstream.plan_tool("write_file", {"path": "assets/control.txt", "content": control})
        upstream.plan_tool("bash", {"command": probe(canary, control), "timeout_sec": 350})
        upstream.plan_text("searched everywhere")
        agent = agent_on(runner, upstream, canary, flavor)
        final = runner.wait(runner.start(agent)["id"])

        # The upstream got exactly the key, in the provider's auth header, on every call.
        assert final["status"] == "succeeded", final
        assert upstream.problems() == []
        requests = upstream.requests()
        assert len(requests) == 3
        assert upstream.keys_seen() == {canary}
        for request in requests:
            assert upstream.model_of(request) == upstream.model
            # ...and nowhere else: not in the conversation, which is all the sandbox sent.
            assert canary not in json.dumps(request.body)
            header_names = [n for n, v in request.headers.items() if canary in v]
            assert header_names, "the key should be in an auth header"
            assert set(header_names) <= {"x-api-key", "authorization", "x-goog-api-key"}

    # What the sandbox saw: nothing of the canary, though each search finds the control.
    lines = runner.stored(final)
    write, search = finished_steps(lines)
    assert write["status"] == "succeeded", write
    assert search["status"] == "succeeded", search
    assert not search["result"]["stdout_truncated"]
    found = sections(search["result"]["stdout"])
    assert list(found) == ["fs", "env", "proc canary", "proc control", "end"], found
    assert len(found["fs"]) == 1, f"the canary (or the control) is in other files: {found['fs']}"
    assert found["fs"][0].endswith("/assets/control.txt"), found["fs"]
    assert found["env"] == ["PROBE_CONTROL"], found["env"]
    assert found["proc canary"] == [], found["proc canary"]
    assert found["proc control"], "the /proc search should find the control in grep's environ"
    assert all(p.endswith("/environ") for p in found["proc control"])

    # Nowhere on the trusted side's record either.
    run_dir = runner.run_dir(final)
    stored = {p.name: p.read_bytes() for p in Path(run_dir).rglob("*") if p.is_file()}
    assert {"stream.jsonl", "steps.json", "result.json"} <= set(stored)
    for name, content in stored.items():
        assert canary.encode() not in content, name
    assert canary not in api_responses(runner, final["id"])
    assert canary not in caplog.text
    assert any(r.name.startswith("actana") for r in caplog.records), "nothing was logged at all"
    with runner.context.database.session() as session:
        audits = session.scalars(select(AuditEvent)).all()
        assert audits
        assert not [a.action for a in audits if canary in f"{a.target} {a.detail}"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_key_canary_native(runner, provider, caplog):
    check_canary(runner, provider, "native", caplog)


@pytest.mark.docker
@pytest.mark.parametrize("provider", PROVIDERS)
def test_key_canary_container(container_runner, provider, caplog):
    check_canary(container_runner, provider, "container", caplog)
