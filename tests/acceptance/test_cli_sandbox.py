"""`actana sandbox cleanup` removes a sandbox left behind by a crashed worker, processes and all;
`actana sandbox status` reports the isolation runs get."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from actana.settings import Settings


def test_cleanup_removes_leftover_sandboxes(cli, master_key):
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
from actana.runs.backends import native_backend
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
    print(sandbox.workspace, flush=True)
    os._exit(0)

asyncio.run(main())
"""
    dying = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert dying.returncode == 0, dying.stderr
    workspace = Path(dying.stdout.strip())
    assert workspace.exists()

    result = cli.run("sandbox", "cleanup")
    assert result.returncode == 0, result.stderr
    assert "removed 1 sandbox(es)" in result.stdout
    assert not workspace.exists()
    again = cli.run("sandbox", "cleanup")
    assert "removed 0 sandbox(es)" in again.stdout

    status = cli.run("sandbox", "status")
    assert status.returncode == 0, status.stderr
    described = json.loads(status.stdout)
    assert described["available"] is True
    assert described["isolation"].startswith("native")
