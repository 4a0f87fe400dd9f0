"""Nothing secret reaches an agent: no one-time or session token, nothing of the server's
environment, no view of the server's data dir. Checked from inside a real native sandbox, by
the agent's own bash and python steps."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.integration.runs.conftest import (
    PROXY_VARIABLES,
    finished_steps,
    leaked_tokens,
    token_hashes,
)

ENV_PROBE = (
    "env; echo ---; cat /proc/self/environ | tr '\\0' '\\n'; echo ---; "
    "cat /proc/$PPID/environ | tr '\\0' '\\n'; echo ---; ls -la /proc/1/ 2>&1; echo ---; "
    "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'"
)
PY_PROBE = "import json, os; print(json.dumps(dict(os.environ)))"
# The sandbox's own variables (DESIGN.md section 5; sandboxes.base.sandbox_environment) and
# those bash adds by itself. Anything else came from somewhere it must not.
SANDBOX_VARIABLES = {
    "PATH", "LANG", "HOME", "PWD", "WORKSPACE_DIR", "ACTANA_CHANNEL", "ACTANA_RUN_ID",
    "SHLVL", "_", "OLDPWD", *PROXY_VARIABLES,
}  # fmt: skip
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Secrets in the server's own environment (set before the server starts)."""
    values = {
        "ACTANA_TEST_CANARY": f"canary-{secrets.token_hex(16)}",
        "SERVER_ONLY_SECRET": f"server-secret-{secrets.token_hex(16)}",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def settings(settings, canaries):  # the canaries are in place before context and server exist
    return settings


def _outputs(step: dict[str, Any]) -> str:
    assert step["status"] == "succeeded", step
    result = step["result"]
    assert not result["stdout_truncated"], "probe output truncated: the check would miss things"
    return str(result["stdout"]) + "\n" + str(result["stderr"])


def test_no_token_or_server_environment_reaches_a_tool(runner, canaries):
    script = [
        {"tool_calls": [{"name": "bash", "args": {"command": ENV_PROBE}}]},
        {"tool_calls": [{"name": "python", "args": {"code": PY_PROBE}}]},
        {"text": "looked around"},
    ]
    run = runner.start(runner.agent(script))
    final = runner.wait(run["id"])
    assert final["status"] == "succeeded", final
    lines = runner.stored(final)
    bash_step, python_step = finished_steps(lines)
    bash_out, python_out = _outputs(bash_step), _outputs(python_step)
    seen = bash_out + "\n" + python_out

    # The probes worked: they printed the sandbox's own environment.
    assert f"ACTANA_RUN_ID={run['id']}" in bash_out, bash_out[:2000]
    python_env = json.loads(python_step["result"]["stdout"])
    assert python_env["ACTANA_RUN_ID"] == run["id"]

    # One-time tokens and the session token: named nowhere, valued nowhere.
    hashes = token_hashes(runner.context, run["id"])
    assert len(hashes) == 4, "setup, run, upload and session tokens should have been issued"
    for name in ("OTP_SETUP", "OTP_RUN", "OTP_UPLOAD"):
        assert name not in seen, f"{name} is visible to a tool"
    assert leaked_tokens(seen, hashes) == [], "a run token is visible to a tool"
    stream = (runner.run_dir(final) / "stream.jsonl").read_text()
    assert leaked_tokens(stream, hashes) == [], "a run token is in stream.jsonl"

    # Nothing of the server's environment or configuration.
    names = set(_ASSIGNMENT.findall(bash_out)) | set(python_env)
    assert names <= SANDBOX_VARIABLES, f"unexpected variables: {sorted(names - SANDBOX_VARIABLES)}"
    for name, value in canaries.items():
        assert name not in seen, f"the server's variable {name} reached the sandbox"
        assert value not in seen, f"the value of the server's {name} reached the sandbox"
    settings = runner.context.settings
    assert settings.master_key is not None
    for key in settings.master_key.get_secret_value().split(","):
        assert key.strip() not in seen, "the master key reached the sandbox"
    url = make_url(settings.resolved_database_url)
    assert settings.resolved_database_url not in seen, "the database URL reached the sandbox"
    if url.password:
        assert f":{url.password}@" not in seen
    assert url.database is not None
    assert url.database not in seen, "the database name reached the sandbox"


def test_the_server_data_dir_is_out_of_reach(runner):
    settings = runner.context.settings
    t = runner.tenant
    workspace_runs = settings.runs_dir / t.id
    # A run whose files are on the host while the probing run looks for them.
    earlier = runner.start(runner.agent([{"text": "first"}]))
    runner.wait(earlier["id"])
    earlier_dir = runner.run_dir(earlier)
    targets: list[Path] = [
        settings.runs_dir,
        workspace_runs,
        earlier_dir,
        earlier_dir / "stream.jsonl",
        earlier_dir / "result.json",
    ]
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        targets.append(Path(url.database))
    for target in targets:
        assert target.exists(), f"{target} should exist on the host (else the probe proves nothing)"
    probes = "; ".join(
        f'{tool} "{p}" >/dev/null 2>&1; echo "{tool}:$?:{p}"'
        for p in targets
        for tool in ("cat", "ls")
    )
    script = [
        {"tool_calls": [{"name": "bash", "args": {"command": probes}}]},
        {"tool_calls": [{"name": "bash", "args": {"command": f'ls -a "{settings.data_dir}"'}}]},
        {"text": "probed"},
    ]
    run = runner.start(runner.agent(script))
    final = runner.wait(run["id"])
    assert final["status"] == "succeeded", final
    probe_step, listing_step = finished_steps(runner.stored(final))
    answers = _outputs(probe_step).split()
    assert len(answers) == 2 * len(targets), answers
    reachable = [a for a in answers if a.split(":", 2)[1] == "0"]
    assert reachable == [], f"the sandbox can read the server's files: {reachable}"
    listed = listing_step["result"]
    listing = listed["stdout"].split() if listed["exit_code"] == 0 else []
    # At most the mount skeleton leading to the sandbox's own workspace may show up there.
    assert set(listing) <= {".", "..", settings.sandboxes_dir.name}, listing
