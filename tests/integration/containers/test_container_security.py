"""The container sandbox is locked down: `docker inspect` of a live sandbox shows the hardened
configuration, and two runs side by side cannot see each other's files. From inside a sandbox:
test_container_security_inside.py; resource limits: test_container_security_limits.py (both use
the helpers here).

Tests hold a sandbox open with a *gate*: a bounded wait in a step for a file in the container's
/tmp, which the test creates with `docker exec` as the sandbox's uid when it is done looking.
Every run a test starts is checked at teardown: no container of it may remain.
"""

from __future__ import annotations

import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, NotFound

from actana.sandboxes.docker_config import CHANNEL_DIR, LABEL_RUN, LABEL_UID
from actana.settings import Settings
from tests.integration.runs.conftest import Runner, assert_well_formed, finished_steps, wait_until

TERMINAL = ("succeeded", "failed", "timeout", "cancelled")
AGENT_TIMEOUT_SEC = 30
GATE_LIMIT_SEC = 15
CANARY = "ACTANA_SECURITY_CANARY"


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    """A secret in the server's own environment (the worker runs in this process)."""
    value = f"canary-{secrets.token_hex(16)}"
    monkeypatch.setenv(CANARY, value)
    return value


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Values unlike the defaults, so that the inspect test proves they come from the settings.
    # Set before the server starts: the docker backend is built when the workers start.
    settings.container_pids = 100
    settings.container_memory_mb = 192
    settings.container_cpus = 1.5
    settings.container_workspace_mb = 48
    settings.container_tmp_mb = 24
    return settings


# --- helpers, shared with the other test_container_security_* files ------------------------


def bash(command: str) -> dict[str, Any]:
    return {"name": "bash", "args": {"command": command}}


def turns(*commands: str) -> list[dict[str, Any]]:
    """A script: one bash step per turn, then a final answer."""
    return [{"tool_calls": [bash(c)]} for c in commands] + [{"text": "done"}]


def gate(name: str) -> str:
    """Shell that waits until the test opens the gate `name` (bounded: exits 99 if never)."""
    return (
        f"for _ in $(seq {GATE_LIMIT_SEC * 20}); do [ -e /tmp/{name} ] && break; sleep 0.05; "
        f'done; [ -e /tmp/{name} ] || {{ echo "gate {name} stayed shut" >&2; exit 99; }}'
    )


PY_GATE = f"""
import os, time
def gate(name):
    end = time.monotonic() + {GATE_LIMIT_SEC}
    while not os.path.exists("/tmp/" + name):
        if time.monotonic() > end:
            raise SystemExit("gate " + name + " stayed shut")
        time.sleep(0.02)
"""
"""The same in Python, for steps that are Python scripts."""


class Live:
    """The container of a live run, seen from the host."""

    def __init__(self, docker_client: Any, run_id: str) -> None:
        def running() -> Any:
            found = docker_client.containers.list(filters={"label": f"{LABEL_RUN}={run_id}"})
            return found[0] if len(found) == 1 else None

        self.container = wait_until(running, 15, f"the running container of {run_id}")
        self.uid = int(self.container.labels[LABEL_UID])

    def inspect(self) -> dict[str, Any]:
        return dict(self.container.client.api.inspect_container(self.container.id))

    def exec(self, *argv: str) -> tuple[int, bytes]:
        """Run `argv` in the container as the sandbox's uid; (-1, error) when docker refuses."""
        try:
            code, output = self.container.exec_run(list(argv), user=f"{self.uid}:{self.uid}")
        except (APIError, NotFound) as exc:
            return -1, str(exc).encode()
        return int(code if code is not None else -1), bytes(output)

    def open_gate(self, name: str) -> None:
        code, output = self.exec("touch", f"/tmp/{name}")
        assert code == 0, f"could not open gate {name}: {output!r}"

    def has(self, path: str) -> bool:
        return self.exec("test", "-e", path)[0] == 0

    def host_view(self, path: str) -> Path:
        """`path` of the container as the host sees it, through its init's /proc entry: a
        look that starts no process in the container (needs root on the Docker host)."""
        pid = self.inspect()["State"]["Pid"]
        assert pid, "the container has no process"
        return Path(f"/proc/{pid}/root") / path.lstrip("/")


class Runs:
    """Starts container runs and remembers them, to check that none leaves a container."""

    def __init__(self, runner: Runner, docker_client: Any) -> None:
        self.runner, self.docker = runner, docker_client
        self.ids: list[str] = []

    def start(self, script: list[dict[str, Any]], **agent_fields: Any) -> str:
        agent = self.runner.agent(script, **{"timeout_sec": AGENT_TIMEOUT_SEC, **agent_fields})
        run_id = str(self.runner.start(agent)["id"])
        self.ids.append(run_id)
        return run_id

    def live(self, run_id: str) -> Live:
        return Live(self.docker, run_id)

    def containers(self, run_id: str) -> list[Any]:
        return list(
            self.docker.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
        )

    def wait(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Follow the run to its terminal line; the final record and its well-formed stream,
        after checking that its container is gone already."""
        final = self.runner.wait(run_id)
        assert self.containers(run_id) == [], f"the container of {run_id} outlived its run"
        lines = self.runner.stored(final)
        assert_well_formed(lines)
        return final, lines

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """The results of the run's steps, once it succeeded."""
        final, lines = self.wait(run_id)
        assert final["status"] == "succeeded", final
        steps = finished_steps(lines)
        assert all(s["status"] == "succeeded" for s in steps), steps
        return [s["result"] for s in steps]

    def close(self) -> None:
        t = self.runner.tenant
        for run_id in self.ids:
            status = t.client.get(t.path(f"/runs/{run_id}")).json()["status"]
            if status not in TERMINAL:  # the test failed midway: end its run
                t.client.post(t.path(f"/runs/{run_id}/cancel"))
                self.runner.wait(run_id)
        left = {run_id: self.containers(run_id) for run_id in self.ids}
        assert not any(left.values()), f"containers left behind: {left}"


def tracked_runs(runner: Runner, docker_client: Any) -> Iterator[Runs]:
    """The body of a `runs` fixture: the tracker, then the teardown check."""
    tracked = Runs(runner, docker_client)
    yield tracked
    tracked.close()


@pytest.fixture
def runs(container_runner: Runner, docker_client: Any) -> Iterator[Runs]:
    yield from tracked_runs(container_runner, docker_client)


def output(result: dict[str, Any]) -> str:
    assert not result["stdout_truncated"], "probe output truncated: the check would miss things"
    return str(result["stdout"])


# --- docker inspect of a live sandbox --------------------------------------------------------


def test_inspect_of_a_live_sandbox_shows_the_hardened_configuration(
    runs: Runs, settings: Settings, canary: str
) -> None:
    run_id = runs.start(turns(f"{gate('release')}; echo released"))
    live = runs.live(run_id)
    info = live.inspect()
    host, config = info["HostConfig"], info["Config"]
    assert info["State"]["Running"], info["State"]

    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"], host["CapAdd"]
    assert host["Privileged"] is False
    assert host["ReadonlyRootfs"] is True
    opts = host["SecurityOpt"] or []
    assert any(o in ("no-new-privileges", "no-new-privileges:true") for o in opts), opts
    assert not [o for o in opts if "unconfined" in o or o.startswith("label=disable")], opts
    assert host["PidsLimit"] == settings.container_pids
    assert host["Memory"] == settings.container_memory_mb << 20
    assert host["MemorySwap"] == host["Memory"], "swap on top of the memory limit"
    assert host["NanoCpus"] == int(settings.container_cpus * 1e9)
    nproc = [u for u in host["Ulimits"] or [] if u["Name"] == "nproc"]
    pids = settings.container_pids
    assert nproc == [{"Name": "nproc", "Soft": pids, "Hard": pids}], host["Ulimits"]

    user, group = config["User"].split(":")
    assert user.isdigit(), config["User"]
    assert group.isdigit(), config["User"]
    assert int(user) == int(group) == live.uid >= 300_000, config["User"]

    # No network, no host namespace, no device.
    assert host["NetworkMode"] == "none"
    networks = info["NetworkSettings"]
    assert set(networks["Networks"] or {}) <= {"none"}, networks  # disabled: none at all
    assert not networks.get("IPAddress"), networks
    assert not networks.get("Ports"), networks
    assert config.get("NetworkDisabled") is True
    for mode in ("PidMode", "UTSMode", "UsernsMode"):
        assert host[mode] == "", (mode, host[mode])  # the container's own, not the host's
    assert host["IpcMode"] == "private"
    assert host["CgroupnsMode"] == "private"  # no host cgroup view either
    assert not host["Devices"], host["Devices"]
    assert not host.get("DeviceCgroupRules"), host["DeviceCgroupRules"]
    assert host["OomKillDisable"] in (False, None)

    # One mount only: the run channel's directory, read-only, holding the channel socket.
    assert not host["Binds"], host["Binds"]
    assert not host["VolumesFrom"], host["VolumesFrom"]
    assert not config.get("Volumes"), config["Volumes"]
    (mount,) = info["Mounts"]
    assert mount["Type"] == "bind", mount
    assert mount["Destination"] == CHANNEL_DIR, mount
    assert mount["RW"] is False, mount
    source = Path(mount["Source"])
    # What the trusted side gives the run: its API and its egress proxy (no skills here).
    names = sorted(p.name for p in source.iterdir())
    assert names == ["channel.sock", "egress.sock"], list(source.iterdir())
    assert all(stat.S_ISSOCK((source / name).stat().st_mode) for name in names)
    assert "docker" not in str(source), source
    assert [m["Target"] for m in host["Mounts"]] == [CHANNEL_DIR], host["Mounts"]

    # Workspace and /tmp: size-capped tmpfs, from the settings.
    assert set(host["Tmpfs"]) == {"/workspace", "/tmp"}, host["Tmpfs"]
    for path, mb in (
        ("/workspace", settings.container_workspace_mb),
        ("/tmp", settings.container_tmp_mb),
    ):
        options = host["Tmpfs"][path].split(",")
        assert f"size={mb << 20}" in options, (path, options)
        assert "nosuid" in options, (path, options)
        assert "nodev" in options, (path, options)

    # Nothing run-specific, no token in what Docker keeps of the container.
    kept = [*config["Env"], *config["Cmd"], *config["Labels"].values()]
    assert not [e for e in config["Env"] if e.startswith(("OTP_", "ACTANA_"))], config["Env"]
    assert not [e for e in kept if "OTP" in e or canary in e], kept
    assert not [e for e in config["Env"] if run_id in e], config["Env"]
    assert config["Labels"][LABEL_RUN] == run_id

    live.open_gate("release")
    (result,) = runs.steps(run_id)  # asserts the container is gone at the terminal line
    assert output(result) == "released\n", result


# --- one run cannot see another's files -----------------------------------------------------


def test_a_run_cannot_see_the_files_of_another_run(runs: Runs) -> None:
    name = f"secret-{secrets.token_hex(8)}"
    content = f"content-{secrets.token_hex(16)}"
    find = f"find / -name '{name}*' 2>/dev/null"
    owner = runs.start(
        turns(
            f"echo {content} > {name}; mkdir -p assets; cp {name} assets/; {find} | sort; "
            f"{gate('release')}; cat {name}"
        )
    )
    a = runs.live(owner)
    wait_until(lambda: a.has(f"/workspace/{name}"), 15, "run A's secret file")
    searcher = runs.start(
        turns(
            f"{find}; echo find-done",
            f"grep -rl --exclude-dir=proc --exclude-dir=sys {content} / 2>/dev/null; "
            "echo grep-done",
            "ls /proc/*/root/workspace/ /proc/*/cwd/ 2>&1; "
            f"cat /proc/*/root/workspace/{name}* 2>&1; echo proc-done",
            "id -u; for f in /proc/[0-9]*/status; do grep '^Uid:' $f; done | sort -u",
        )
    )
    found, grepped, via_proc, uids = (output(r) for r in runs.steps(searcher))
    b_uid = int(uids.split()[0])
    assert b_uid != a.uid, "two runs got the same uid"
    assert found == "find-done\n", found
    assert grepped == "grep-done\n", grepped
    assert via_proc.endswith("proc-done\n"), via_proc
    assert content not in via_proc, via_proc
    assert name not in via_proc.replace(f"/workspace/{name}*", ""), via_proc
    assert uids.splitlines()[1:] == [f"Uid:\t{b_uid}\t{b_uid}\t{b_uid}\t{b_uid}"], uids

    a.open_gate("release")
    (result,) = runs.steps(owner)
    # The control: A's own search found the file, and it is still there, unchanged.
    assert output(result) == f"/workspace/assets/{name}\n/workspace/{name}\n{content}\n", result
