"""Resource limits of a container sandbox, hit from inside by scripted `bash` steps: a fork
bomb stops at the PID limit and a memory hog is killed by the memory cgroup while another run
works normally next to it, and filling the workspace (or /tmp, or /dev/shm) stops at its cap.
The gates and helpers are those of test_container_security.py."""

from __future__ import annotations

import errno
import json
from collections.abc import Generator, Iterator
from typing import Any, cast

import pytest

from actana.settings import Settings
from tests.integration.containers.test_container_security import (
    PY_GATE,
    Runs,
    gate,
    output,
    tracked_runs,
    turns,
)
from tests.integration.runs.conftest import Runner, finished_steps, wait_until

PIDS = 64
MEMORY_MB = 128
WORKSPACE_MB = 32
TMP_MB = 16
SHM_MB = 16  # docker_config's ShmSize

CGROUP = """
def cgroup(controller, name):
    for path in ("/sys/fs/cgroup/%s/%s" % (controller, name), "/sys/fs/cgroup/" + name):
        try:
            return open(path).read().strip()
        except OSError:
            pass
    return None
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Set before the server starts: the docker backend is built when the workers start.
    settings.container_pids = PIDS
    settings.container_memory_mb = MEMORY_MB
    settings.container_workspace_mb = WORKSPACE_MB
    settings.container_tmp_mb = TMP_MB
    return settings


@pytest.fixture
def runs(container_runner: Runner, docker_client: Any) -> Iterator[Runs]:
    yield from tracked_runs(container_runner, docker_client)


def python(code: str) -> str:
    """A bash command that runs `code` with the sandbox's python3 (as its last command)."""
    return f"python3 - <<'EOF'\n{code}\nEOF"


def _healthy(runner: Runner) -> None:
    """The server answers and still sees the Docker daemon and the image."""
    client = runner.tenant.client
    assert client.get("/healthz").json()["status"] == "ok"
    checks = client.get("/readyz").json()["checks"]
    assert checks["sandbox_docker"]["ok"], checks["sandbox_docker"]


def _first_step_done(runner: Runner, run_id: str) -> dict[str, Any]:
    """Follow the run's events until its first step has finished; that step's last line."""
    events = cast("Generator[dict[str, Any], None, None]", runner.events(run_id))
    try:
        for line in events:
            if line["type"] == "step" and line["status"] != "running":
                return line
            assert line["type"] not in ("result", "error"), f"the run ended first: {line}"
    finally:
        events.close()
    raise AssertionError("the events stream closed before the first step finished")


# Forks children that wait (as many as it can), notes how far it got and why it stopped, frees
# four slots (room for the test's `docker exec`), holds the rest until the test releases it.
BOMB = (
    PY_GATE
    + CGROUP
    + f"PIDS = {PIDS}\n"
    + """
import json, os, signal
kids, error = [], None
while len(kids) < 10 * PIDS:
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc.errno
        break
    if pid == 0:
        signal.pause()
        os._exit(0)
    kids.append(pid)
report = {
    "forked": len(kids), "errno": error,
    "pids_max": cgroup("pids", "pids.max"), "pids_current": cgroup("pids", "pids.current"),
    "processes": len([p for p in os.listdir("/proc") if p.isdigit()]),
}
for pid in kids[:4]:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
open("/tmp/peaked", "w").close()
gate("release")
report["events"] = cgroup("pids", "pids.events")
for pid in kids[4:]:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
print(json.dumps(report))
"""
)
# Twenty processes at once, all of them started and reaped: a normal day's work.
FORK_SOME = """
import os
kids = []
for _ in range(20):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    kids.append(pid)
print("forked", sum(os.waitpid(pid, 0)[1] == 0 for pid in kids))
"""


def test_a_fork_bomb_stops_at_the_pid_limit_while_another_run_works(
    runs: Runs, container_runner: Runner
) -> None:
    bomb = runs.start(turns(python(BOMB)))
    other = runs.start(turns(f"{gate('go')}; {python(FORK_SOME)}"))
    a, b = runs.live(bomb), runs.live(other)
    # Watched from the host, so that no process of ours takes a slot from the bomb.
    peaked = a.host_view("/tmp/peaked")
    wait_until(peaked.exists, 15, "the fork bomb to reach its limit")

    b.open_gate("go")  # run B works while run A holds all but four of its slots
    (result,) = runs.steps(other)
    assert output(result) == "forked 20\n", result
    _healthy(container_runner)

    a.open_gate("release")
    (result,) = runs.steps(bomb)
    report = json.loads(output(result))
    assert report["errno"] == errno.EAGAIN, report  # fork failed for want of a slot ...
    assert report["pids_max"] == str(PIDS), report  # ... under the container's pids cgroup
    assert report["processes"] <= PIDS, report  # everything of the sandbox, bomb included
    assert int(report["pids_current"]) <= PIDS, report
    assert report["forked"] >= PIDS - 8, report  # and not for any other reason


# Allocates 512 MiB in 16 MiB chunks, touching every page, saying how far it got.
HOG = """
import sys
chunks = []
for i in range(32):
    chunk = bytearray(16 << 20)
    chunk[::4096] = b"\\x01" * (len(chunk) // 4096)
    chunks.append(chunk)
    print((i + 1) * 16, flush=True)
print("allocated all of it")
"""
# Holds 48 MiB of its own (over a third of its budget) across the OOM kill next door.
HOLD = (
    PY_GATE
    + """
import hashlib
block = bytearray(range(256)) * (48 << 12)
digest = hashlib.sha256(block).hexdigest()
open("/tmp/holding", "w").close()
gate("after")
print("intact" if hashlib.sha256(block).hexdigest() == digest else "corrupted")
"""
)
OOM_COUNTER = python(
    CGROUP + 'print(cgroup("memory", "memory.oom_control") or cgroup("memory", "memory.events"))'
)


def test_a_memory_hog_is_killed_by_the_memory_cgroup_while_another_run_works(
    runs: Runs, container_runner: Runner
) -> None:
    hog = runs.start(turns(f"{gate('go')}; {python(HOG)}", OOM_COUNTER))
    other = runs.start(turns(python(HOLD)))
    a, b = runs.live(hog), runs.live(other)
    wait_until(lambda: b.has("/tmp/holding"), 15, "run B to hold its memory")

    a.open_gate("go")
    step = _first_step_done(container_runner, hog)
    assert step["status"] == "succeeded", step  # the tool ran; its process was killed
    assert step["result"]["exit_code"] in (137, -9), step["result"]
    reached = [int(n) for n in step["result"]["stdout"].split()]
    assert reached, step["result"]
    assert max(reached) <= MEMORY_MB, reached  # never past the limit

    b.open_gate("after")  # run B still holds its memory, unharmed
    (result,) = runs.steps(other)
    assert output(result) == "intact\n", result
    _healthy(container_runner)

    final, lines = runs.wait(hog)
    assert final["status"] == "succeeded", final  # the run goes on after its tool was killed
    counters = dict(
        line.split() for line in output(finished_steps(lines)[1]["result"]).splitlines()
    )
    assert int(counters["oom_kill"]) >= 1, counters


def _fill(path: str, mb: int) -> str:
    return f"dd if=/dev/zero of={path} bs=1M count={mb} 2>&1 | head -1; stat -c 'size=%s' {path}"


def test_filling_the_workspace_stops_at_its_cap(runs: Runs, container_runner: Runner) -> None:
    run_id = runs.start(
        turns(
            _fill("big", 96),
            _fill("/tmp/big", 96),
            _fill("/dev/shm/big", 96),
            "rm big /tmp/big /dev/shm/big; touch /usr/local/new 2>&1; mkdir -p assets; "
            "echo after > assets/after.txt && cat assets/after.txt",
        )
    )
    workspace, tmp, shm, after = (output(r) for r in runs.steps(run_id))
    for text, cap in ((workspace, WORKSPACE_MB), (tmp, TMP_MB), (shm, SHM_MB)):
        said = text.splitlines()
        assert said[0].endswith("No space left on device"), text  # not killed, not a rlimit
        size = int(said[-1].removeprefix("size="))
        assert 0 < size <= cap << 20, text
    assert "Read-only file system" in after, after
    assert after.endswith("after\n"), "the run cannot write once its workspace is free again"
    t = container_runner.tenant
    files = t.client.get(t.path(f"/runs/{run_id}/files")).json()
    assert [f["name"] for f in files] == ["after.txt"], files
