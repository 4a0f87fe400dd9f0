"""The runs pages over HTTP (no browser): the list with its filters and pages, a run's page, a
new run from the form, the verify endpoint, downloads, and hostile run data rendered inert."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from actana.db.models import Run
from actana.runs import storage
from actana.runs.chain import REWRITTEN
from tests.conftest import LiveServer, Tenant, forge_consistent_run_folder, make_tenant
from tests.integration.runs.conftest import Runner
from tests.integration.web.conftest import form_token, meta_token, sign_in

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&"


def _agent(tenant: Tenant, name: str = "helper") -> str:
    return tenant.scripted_agent(name, [{"text": "ok"}])


def _start(tenant: Tenant, agent_id: str, prompt: str) -> str:
    r = tenant.client.post(tenant.path(f"/agents/{agent_id}/runs"), json={"prompt": prompt})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _row_ids(page: str) -> list[str]:
    return re.findall(r'<tr class="run-row" data-run-id="([^"]+)"', page)


@pytest.fixture
def web(live_server: LiveServer, tenant: Tenant) -> Iterator[httpx.Client]:
    with closing(sign_in(live_server.url, tenant.api_key)) as client:
        yield client


# --- the list ---------------------------------------------------------------------------------


def test_the_list_shows_runs_newest_first_and_escapes_their_prompts(web, tenant, context):
    agent = _agent(tenant)
    first = _start(tenant, agent, "first " + HOSTILE)
    second = _start(tenant, agent, "second plain")
    page = web.get("/ui/")
    assert page.status_code == 200
    assert _row_ids(page.text) == [second, first]
    assert "<script>alert(1)</script>" not in page.text
    assert "<img src=x" not in page.text
    assert html.escape("<script>alert(1)</script>") in page.text
    assert 'data-status="queued"' in page.text
    assert web.get("/ui/runs").text.count('class="run-row"') == 2


def test_filters_by_status_agent_prompt_text_and_time(web, tenant, context):
    a1, a2 = _agent(tenant, "one"), _agent(tenant, "two")
    r1 = _start(tenant, a1, "Summarise the REPORT please")
    r2 = _start(tenant, a2, "write 100% of a poem")
    r3 = _start(tenant, a1, "nothing special")
    old = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    with context.database.session() as session:
        session.execute(update(Run).where(Run.id == r3).values(created_at=old, status="failed"))

    def ids(**params: str) -> list[str]:
        r = web.get("/ui/runs", params=params)
        assert r.status_code == 200, r.text
        return _row_ids(r.text)

    assert ids(status="failed") == [r3]
    assert ids(agent=a2) == [r2]
    assert ids(q="report") == [r1]  # any case
    assert ids(q="100%") == [r2]  # % is literal, not a wildcard
    assert ids(q="0%") == [r2]
    assert ids(q="_") == []
    assert ids(to="2025-06-01T00:00") == [r3]
    assert set(ids(**{"from": "2025-06-01T00:00"})) == {r1, r2}
    assert ids(**{"from": "2025-01-01T12:00", "to": "2025-01-01T12:01"}) == [r3]  # from inclusive
    assert ids(**{"from": "2024-01-01T00:00", "to": "2025-01-01T12:00"}) == []  # to exclusive
    # the same filters on the JSON API
    api = tenant.client.get(tenant.path("/runs"), params={"q": "REPORT", "status": "queued"})
    assert [r["id"] for r in api.json()["items"]] == [r1]
    api = tenant.client.get(
        tenant.path("/runs"),
        params={"created_from": "2025-01-01T00:00:00Z", "created_to": "2025-01-02T00:00:00+00:00"},
    )
    assert [r["id"] for r in api.json()["items"]] == [r3]
    naive = tenant.client.get(tenant.path("/runs"), params={"created_from": "2025-01-01T00:00"})
    assert naive.status_code == 422
    assert naive.json()["error"]["field"] == "created_from"


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"from": "yesterday"}, "from", "Not a date and time"),
        ({"from": "2026-01-02T00:00", "to": "2026-01-01T00:00"}, "to", "later than"),
        ({"status": "<b>done</b>"}, "status", "Unknown status"),
        ({"agent": "ag_nope"}, "agent", "No such agent"),
        ({"q": "x" * 501}, "q", "At most 500"),
    ],
)
def test_a_bad_filter_gets_its_error_next_to_the_field(web, tenant, params, field, message):
    r = web.get("/ui/runs", params=params)
    assert r.status_code == 422
    match = re.search(rf'<p id="f-{field}-error" class="field-error">([^<]*)</p>', r.text)
    assert match, r.text
    assert message in html.unescape(match.group(1))
    assert "<b>done</b>" not in r.text


def test_pages_of_25_keep_the_filters(web, tenant):
    agent = _agent(tenant)
    started = [_start(tenant, agent, f"job {n}") for n in range(27)]
    first = web.get("/ui/runs", params={"q": "job"})
    assert _row_ids(first.text) == started[::-1][:25]
    assert "page 1 of 2" in first.text
    next_url = html.unescape(
        re.search(r'id="page-next" class="button" href="([^"]+)"', first.text)[1]
    )
    assert "q=job" in next_url
    second = web.get(next_url)
    assert _row_ids(second.text) == started[::-1][25:]
    assert 'id="page-next"' not in second.text
    assert 'id="page-prev"' in second.text
    # past the last page (a stale link): said so, with the way back, not "No runs yet"
    beyond = web.get("/ui/runs", params={"q": "job", "page": 9})
    assert beyond.status_code == 200
    assert "There is no page 9: 27 runs fill 2 pages." in " ".join(beyond.text.split())
    first_url = html.unescape(re.search(r'id="page-first" href="([^"]+)"', beyond.text)[1])
    assert _row_ids(web.get(first_url).text) == started[::-1][:25]
    assert "No runs yet" not in beyond.text


# --- one run ----------------------------------------------------------------------------------


def test_the_run_page_escapes_what_the_sandbox_said(web, tenant, context):
    agent = _agent(tenant)
    run_id = _start(tenant, agent, HOSTILE)
    with context.database.session() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                status="failed",
                isolation=HOSTILE,
                sandbox_backend="native",
                error_code="internal",
                error_message=HOSTILE,
                input_files=[{"name": '"><svg onload=alert(3)>.txt', "size": 1, "sha256": "0"}],
            )
        )
    page = web.get(f"/ui/runs/{run_id}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "<img src=x" not in page.text
    assert "<svg onload" not in page.text
    assert "&#34;&gt;&lt;svg onload=alert(3)&gt;.txt" in page.text
    # prompt, isolation, error message
    assert page.text.count(html.escape("<script>alert(1)</script>")) == 3
    # no inline script or style at all: only our static files
    assert re.findall(r"<script[^>]*>", page.text) == [
        '<script src="/ui/static/format.js?v=0.1.0" defer>',
        '<script src="/ui/static/run.js?v=0.1.0" defer>',
    ]
    assert " style=" not in page.text
    assert " onclick=" not in page.text


def test_another_workspaces_session_gets_404_for_every_run_url(
    live_server, tenant, other_tenant, context
):
    run_id = _start(other_tenant, _agent(other_tenant), "theirs")
    with closing(sign_in(live_server.url, tenant.api_key)) as web:
        token = meta_token(web.get("/ui/").text)
        assert web.get(f"/ui/runs/{run_id}").status_code == 404
        assert web.get(f"/ui/runs/{run_id}?replay=1").status_code == 404
        theirs = other_tenant.path(f"/runs/{run_id}")
        mine = tenant.path(f"/runs/{run_id}")
        for path in (theirs, mine):
            for suffix in ("", "/events", "/stream.jsonl", "/files", "/files/x.txt", "/verify"):
                assert web.get(path + suffix).status_code == 404, path + suffix
            r = web.post(path + "/cancel", headers={"X-CSRF-Token": token})
            assert r.status_code == 404
    with context.database.session() as session:
        assert session.get(Run, run_id).status == "queued"


def test_cancel_from_the_page_needs_the_csrf_header(web, tenant):
    run_id = _start(tenant, _agent(tenant), "cancel me")
    token = meta_token(web.get(f"/ui/runs/{run_id}").text)
    cancel = tenant.path(f"/runs/{run_id}/cancel")
    assert web.post(cancel).status_code == 403
    assert web.post(cancel, headers={"X-CSRF-Token": "nope"}).status_code == 403
    r = web.post(cancel, headers={"X-CSRF-Token": token})
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    assert web.get(tenant.path(f"/runs/{run_id}/verify")).json()["state"] in ("verified", "pending")


# --- a new run --------------------------------------------------------------------------------


def test_a_new_run_from_the_form_with_a_file(web, tenant, context):
    agent = _agent(tenant)
    form = web.get("/ui/runs/new", params={"agent": agent})
    assert form.status_code == 200
    assert f'<option value="{agent}" selected>' in form.text
    data = {"csrf_token": form_token(form.text), "agent": agent, "prompt": "use the file"}
    r = web.post("/ui/runs/new", data=data, files=[("files", ("in.txt", b"hello\n", "text/plain"))])
    assert r.status_code == 303, r.text
    run_id = r.headers["location"].removeprefix("/ui/runs/")
    run = tenant.client.get(tenant.path(f"/runs/{run_id}")).json()
    assert run["prompt"] == "use the file"
    assert [f["name"] for f in run["input_files"]] == ["in.txt"]
    inputs = storage.inputs_dir(context.settings, tenant.id, run_id)
    assert (inputs / "in.txt").read_bytes() == b"hello\n"
    assert "Run queued" in web.get(r.headers["location"]).text


def test_a_refused_file_is_named_next_to_the_file_field_and_the_prompt_stays(web, tenant, context):
    agent = _agent(tenant)
    form = web.get("/ui/runs/new")
    data = {"csrf_token": form_token(form.text), "agent": agent, "prompt": "keep " + HOSTILE}
    files = [
        ("files", ("ok.txt", b"fine", "text/plain")),
        ("files", ('"><svg onload=alert(1)>.exe', b"MZ", "application/octet-stream")),
    ]
    r = web.post("/ui/runs/new", data=data, files=files)
    assert r.status_code == 422
    error = re.search(r'<p id="files-error" class="field-error">([^<]*)</p>', r.text)
    assert error, r.text
    assert "svg onload=alert(1)" in html.unescape(error[1])
    assert "'.exe' files are not accepted" in html.unescape(error[1])
    assert "<svg" not in r.text
    prompt = re.search(r'<textarea id="prompt"[^>]*>([^<]*)</textarea>', r.text)
    assert prompt
    assert html.unescape(prompt[1]) == "keep " + HOSTILE
    assert f'<option value="{agent}" selected>' in r.text
    assert tenant.client.get(tenant.path("/runs")).json()["total"] == 0
    workspace_runs = context.settings.runs_dir / tenant.id
    assert not list(workspace_runs.glob("*/*")) if workspace_runs.exists() else True


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"agent": "", "prompt": "p"}, "agent", "Pick the agent"),
        ({"agent": "ag_nope", "prompt": "p"}, "agent", "does not exist"),
        ({"prompt": "   "}, "prompt", "Write what the agent should do"),
    ],
)
def test_a_bad_field_of_the_new_run_form_is_shown_next_to_it(web, tenant, fields, field, message):
    agent = _agent(tenant)
    form = web.get("/ui/runs/new")
    data = {"csrf_token": form_token(form.text), "agent": agent, **fields}
    r = web.post("/ui/runs/new", data=data, files=[("files", ("a.txt", b"a", "text/plain"))])
    assert r.status_code == 422
    error = re.search(rf'<p id="{field}-error" class="field-error">([^<]*)</p>', r.text)
    assert error, r.text
    assert message in html.unescape(error[1])
    assert "attach the files again" in r.text
    assert tenant.client.get(tenant.path("/runs")).json()["total"] == 0


@pytest.mark.parametrize("token", [None, "wrong"])
def test_the_new_run_form_needs_its_csrf_token(web, tenant, token):
    agent = _agent(tenant)
    data = {"agent": agent, "prompt": "p"} | ({"csrf_token": token} if token else {})
    r = web.post("/ui/runs/new", data=data, files=[("files", ("a.txt", b"a", "text/plain"))])
    assert r.status_code == 403
    assert "CSRF" in r.text
    assert tenant.client.get(tenant.path("/runs")).json()["total"] == 0


# --- a real run: verify, downloads ------------------------------------------------------------

SCRIPT = [
    {
        "tool_calls": [
            {"name": "bash", "args": {"command": "echo '<script>alert(1)</script>'"}},
            {"name": "write_file", "args": {"path": "assets/out.txt", "content": "made\n"}},
        ]
    },
    {"text": "done <img src=x onerror=alert(1)>"},
]


@pytest.fixture
def runner(context, worker_server: LiveServer) -> Iterator[Runner]:
    tenant = make_tenant(context, worker_server, "runs")
    yield Runner(context, tenant)
    tenant.client.close()


def test_a_finished_run_verifies_downloads_as_an_attachment_and_tampering_shows(
    runner, worker_server
):
    run = runner.start(runner.agent(SCRIPT), "go")
    final = runner.wait(run["id"])
    assert final["status"] == "succeeded", final
    t = runner.tenant
    with closing(sign_in(worker_server.url, t.api_key)) as web:
        page = web.get(f"/ui/runs/{run['id']}")
        assert 'data-status="succeeded"' in page.text
        verdict = web.get(t.path(f"/runs/{run['id']}/verify")).json()
        assert verdict["state"] == "verified", verdict
        download = web.get(t.path(f"/runs/{run['id']}/files/out.txt"))
        assert download.status_code == 200
        assert download.content == b"made\n"
        assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''out.txt"
        assert download.headers["content-type"] == "application/octet-stream"
        assert download.headers["x-content-type-options"] == "nosniff"
        stream = web.get(t.path(f"/runs/{run['id']}/stream.jsonl"))
        lines = [json.loads(line) for line in stream.text.splitlines()]
        assert lines[-1]["type"] == "result"
        # one character of one line changed: the badge says which line
        path = runner.run_dir(final) / "stream.jsonl"
        raw = path.read_bytes().splitlines(keepends=True)
        raw[2] = raw[2].replace(b'"seq":2', b'"seq":2 ', 1)
        path.write_bytes(b"".join(raw))
        verdict = web.get(t.path(f"/runs/{run['id']}/verify")).json()
        assert verdict["state"] == "tampered"
        assert verdict["first_bad_line"] == 3
        # a folder rewritten whole, consistent with itself: only the database's hash tells
        path.write_bytes(b"".join(raw).replace(b'"seq":2 ', b'"seq":2', 1))
        assert web.get(t.path(f"/runs/{run['id']}/verify")).json()["state"] == "verified"
        forge_consistent_run_folder(runner.run_dir(final))
        verdict = web.get(t.path(f"/runs/{run['id']}/verify")).json()
        assert verdict["state"] == "tampered", verdict
        assert verdict["first_bad_line"] is None
        assert verdict["message"] == REWRITTEN


def test_the_verify_endpoint_says_pending_until_the_run_ends(web, tenant):
    run_id = _start(tenant, _agent(tenant), "later")
    verdict = web.get(tenant.path(f"/runs/{run_id}/verify")).json()
    assert verdict == {
        "state": "pending",
        "message": "the run has not ended (queued)",
        "lines": 0,
        "first_bad_line": None,
    }


def test_timestamps_render_in_utc(web, tenant, context):
    run_id = _start(tenant, _agent(tenant), "when")
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC) + timedelta(microseconds=5)
    with context.database.session() as session:
        session.execute(update(Run).where(Run.id == run_id).values(created_at=at))
    assert "2026-03-04 05:06:07" in web.get("/ui/runs").text
