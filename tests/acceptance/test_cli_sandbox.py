"""`actana sandbox cleanup` removes sandboxes left behind by a crashed worker (a native process
tree, a container), processes and all, and says what it removed; `actana sandbox status` reports
both backends and the isolation runs get."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from actana.settings import Settings


def test_cleanup_removes_leftover_sandboxes(cli, master_key, sandbox_image, docker_client):
    assert cli.run("db", "upgrade").returncode == 0
    settings = Settings(
        _env_file=None,
        data_dir=cli.cwd / "data",
        database_url=cli.env["ACTANA_DATABASE_URL"],
        master_key=SecretStr(master_key),
    )
    # A worker that dies right after starting a sandbox: a separate process that exits hard.
    script = f"""
import asyncio, os, sys
from pathlib import Path
from pydantic import SecretStr
from actana.runs.backends import docker_backend, native_backend
from actana.sandboxes import SandboxLimits, SandboxSpec
from actana.settings import Settings

settings = Settings(_env_file=None, data_dir=Path({str(settings.data_dir)!r}),
                    database_url={settings.database_url!r}, master_key=SecretStr({master_key!r}))
spec = SandboxSpec(run_id="run_" + "c" * 20, worker_id="dead-worker",
                   command=[sys.executable, "-c", "import time; time.sleep(600)"], env={{}},
                   channel_socket=None, limits=SandboxLimits())

async def main():
    sandbox = await native_backend(settings).create(spec)
    await sandbox.start()
    container = await docker_backend(settings).create(spec)
    await container.start()
    print(sandbox.workspace, container.container_id, flush=True)
    os._exit(0)

asyncio.run(main())
"""
    dying = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert dying.returncode == 0, dying.stderr
    folder, container_id = dying.stdout.split()
    workspace = Path(folder)
    assert workspace.exists()
    assert docker_client.containers.get(container_id).status == "running"

    result = cli.run("sandbox", "cleanup")
    assert result.returncode == 0, result.stderr
    assert "removed 2 sandbox(es)" in result.stdout
    assert "removed native run_cccc" in result.stdout
    assert "removed docker run_cccc" in result.stdout
    assert not workspace.exists()
    assert not docker_client.containers.list(all=True, filters={"id": container_id})
    again = cli.run("sandbox", "cleanup")
    assert "removed 0 sandbox(es)" in again.stdout

    status = cli.run("sandbox", "status")
    assert status.returncode == 0, status.stderr
    described = json.loads(status.stdout)
    assert described["native"]["available"] is True
    assert described["native"]["isolation"].startswith("native")
    assert described["docker"]["available"] is True, described["docker"]
    assert described["docker"]["image"] == sandbox_image
