"""The CLI end to end: workspaces, the server refusing bad keys, rotation killed halfway."""

from __future__ import annotations

import json
import signal

import httpx
import pytest

from actana.security.keyring import KEY_PREFIX, generate_master_key


def test_keys_generate_prints_a_fresh_valid_key(cli):
    first, second = cli.run("keys", "generate"), cli.run("keys", "generate")
    assert first.returncode == 0, first.stderr
    for out in (first.stdout, second.stdout):
        assert out.startswith(KEY_PREFIX)
        assert len(out.strip()) == len(KEY_PREFIX) + 43
    assert first.stdout != second.stdout


def test_workspace_create_json_and_the_key_works(cli, server):
    created = cli.run("workspace", "create", "acme", "--json")
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["id"].startswith("ws_")
    assert body["api_key"].startswith("ak_")
    headers = {"Authorization": f"Bearer {body['api_key']}"}
    r = httpx.get(f"{server}/api/v1/workspaces/{body['id']}", headers=headers)
    assert r.status_code == 200
    assert r.json()["name"] == "acme"

    again = cli.run("workspace", "create", "acme", "--json")
    assert again.returncode == 2
    assert "already exists" in again.stderr

    bad = cli.run("workspace", "create", "../evil", "--json")
    assert bad.returncode == 2
    assert "invalid workspace name" in bad.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"ACTANA_MASTER_KEY": None}, "no master key is configured"),
        ({"ACTANA_MASTER_KEY": "hunter2-not-a-key"}, "malformed"),
        ({"ACTANA_MASTER_KEY": KEY_PREFIX + "c2hvcnQ"}, "malformed"),
        (
            {"ACTANA_MASTER_KEY": None, "ACTANA_MASTER_KEY_FILE": "/nonexistent/key"},
            "does not exist",
        ),
    ],
)
def test_server_refuses_to_start_with_a_bad_key(cli, overrides, expected):
    result = cli.run("server", "--port", "0", timeout=60, **overrides)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "actana keys generate" in result.stderr or "does not exist" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_server_refuses_the_wrong_key(cli):
    assert cli.run("db", "upgrade").returncode == 0
    first = cli.run("workspace", "create", "one")  # stores the canary under the right key
    assert first.returncode == 0, first.stderr
    wrong = generate_master_key()
    result = cli.run("server", "--port", "0", timeout=60, ACTANA_MASTER_KEY=wrong)
    assert result.returncode == 2
    assert "wrong" in result.stderr
    assert "actana keys rotate" in result.stderr
    assert wrong[len(KEY_PREFIX) :] not in result.stderr + result.stdout


def test_rotation_killed_halfway_then_rerun(cli, master_key):
    assert cli.run("workspace", "create", "one", "--json").returncode == 0
    # Seed secrets through the API service layer in-process, on the same database.
    from pydantic import SecretStr

    from actana.bootstrap import build_context
    from actana.settings import Settings

    settings = Settings(
        _env_file=None,
        data_dir=cli.cwd / "data",
        database_url=cli.env["ACTANA_DATABASE_URL"],
        master_key=SecretStr(master_key),
    )
    context = build_context(settings)
    from sqlalchemy import select

    from actana.db.models import Secret, Workspace

    with context.database.session() as session:
        ws = session.scalar(select(Workspace))
        for i in range(200):
            context.secrets.put(
                session,
                workspace_id=ws.id,
                owner_kind="model_endpoint",
                owner_id=f"me_{i:04d}",
                name="api_key",
                value=f"plain-{i}",
                actor="test",
            )
    context.database.dispose()

    new_key = generate_master_key()
    both = f"{new_key},{master_key}"
    # Throttled so the kill lands mid-way; the rows are committed batch by batch regardless.
    rotating = cli.popen(
        "keys", "rotate", "--batch-size", "5", "--batch-delay", "0.05", ACTANA_MASTER_KEY=both
    )
    assert rotating.stdout is not None
    first_line = rotating.stdout.readline()
    assert "rewrapped" in first_line, first_line
    rotating.send_signal(signal.SIGKILL)
    rotating.wait(timeout=30)
    rotating.stdout.close()
    assert rotating.stderr is not None
    rotating.stderr.close()

    settings.master_key = SecretStr(both)
    context = build_context(settings)
    new_id = context.keyring.primary.key_id
    with context.database.session() as session:
        ids = list(session.scalars(select(Secret.key_id)))
        moved = ids.count(new_id)
        assert 0 < moved < 200, moved
        for i in range(200):
            assert (
                context.secrets.get(session, "model_endpoint", f"me_{i:04d}", "api_key")
                == f"plain-{i}"
            )
    context.database.dispose()

    refused = cli.run("server", "--port", "0", timeout=60, ACTANA_MASTER_KEY=new_key)
    assert refused.returncode == 2
    assert "dropped while rows still use it" in refused.stderr

    status = cli.run("keys", "status", ACTANA_MASTER_KEY=both)
    assert status.returncode == 0
    assert new_id in status.stdout

    finished = cli.run("keys", "rotate", "--batch-size", "50", ACTANA_MASTER_KEY=both)
    assert finished.returncode == 0, finished.stderr
    assert f"done: {200 - moved} secret(s)" in finished.stdout
    assert "you may remove it" in finished.stdout

    settings.master_key = SecretStr(new_key)
    context = build_context(settings)  # the old key is no longer needed
    with context.database.session() as session:
        assert set(session.scalars(select(Secret.key_id))) == {new_id}
        for i in range(200):
            assert (
                context.secrets.get(session, "model_endpoint", f"me_{i:04d}", "api_key")
                == f"plain-{i}"
            )
    context.database.dispose()


def test_dev_mode_server_starts_without_a_key(cli, tmp_path):
    from tests.acceptance.conftest import free_port, wait_ready

    port = free_port()
    process = cli.popen("server", "--port", str(port), ACTANA_MASTER_KEY=None, ACTANA_DEV_MODE="1")
    try:
        wait_ready(process, f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()
    key_file = tmp_path / "data" / "master.key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_no_key_material_in_server_output_or_responses(cli, master_key):
    from tests.acceptance.conftest import free_port, wait_ready

    created = json.loads(cli.run("workspace", "create", "acme", "--json").stdout)
    port = free_port()
    process = cli.popen("server", "--port", str(port), ACTANA_LOG_LEVEL="debug")
    url = f"http://127.0.0.1:{port}/api/v1/workspaces/{created['id']}"
    canary = "sk-ant-canary-" + generate_master_key()[-20:]
    bodies = []
    try:
        wait_ready(process, f"http://127.0.0.1:{port}")
        with httpx.Client(headers={"Authorization": f"Bearer {created['api_key']}"}) as client:
            r = client.post(
                url + "/model-endpoints",
                json={"name": "a", "provider": "anthropic", "model": "m", "api_key": canary},
            )
            assert r.status_code == 201, r.text
            bodies += [r.text, client.get(url + "/model-endpoints").text]
            bodies.append(client.get(url + "/model-endpoints/" + r.json()["id"]).text)
            bodies.append(client.get(url + "/audit-events").text)
            bodies.append(client.get(f"http://127.0.0.1:{port}/readyz").text)
            bad = client.post(
                url + "/model-endpoints", json={"name": "a", "provider": "x", "api_key": canary}
            )
            assert bad.status_code == 422
            bodies.append(bad.text)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    everything = "\n".join([*bodies, out, err])
    assert "secret.written" in everything  # the audit trail saw the write
    assert canary not in everything
    assert master_key[len(KEY_PREFIX) :] not in everything
