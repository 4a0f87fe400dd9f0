"""From inside a container sandbox, as scripted `bash` steps of one run: no capability in any
process, no-new-privileges and a seccomp filter, no way to mount or unshare, no Docker socket,
no network (not the server's port, not a port the test listens on, on loopback or on any host
address), and in the environment or anywhere in /proc no token and nothing of the server's."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from actana.sandboxes.docker_config import CHANNEL_DIR
from tests.conftest import LiveServer
from tests.integration.containers.test_container_security import (
    CANARY,
    Runs,
    output,
    tracked_runs,
    turns,
)
from tests.integration.runs.conftest import (
    PROXY_VARIABLES,
    Runner,
    leaked_tokens,
    token_hashes,
)

# The sandbox's own variables (docker_config.container_request, sandboxes.base
# .sandbox_environment) and those bash adds by itself. Anything else came from elsewhere.
SANDBOX_VARIABLES = {
    "PATH", "LANG", "HOME", "PWD", "WORKSPACE_DIR", "ACTANA_CHANNEL", "ACTANA_RUN_ID",
    "SHLVL", "_", "OLDPWD", *PROXY_VARIABLES,
}  # fmt: skip
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    """A secret in the server's own environment (the worker runs in this process)."""
    value = f"canary-{os.urandom(16).hex()}"
    monkeypatch.setenv(CANARY, value)
    return value


@pytest.fixture
def runs(container_runner: Runner, docker_client: Any) -> Iterator[Runs]:
    yield from tracked_runs(container_runner, docker_client)


STATUS_PROBE = (
    'for f in /proc/[0-9]*/status; do echo "== $f"; '
    "grep -E '^(Name|Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' $f; done"
)
ESCAPE_PROBE = r"""
mkdir -p /tmp/m
mount -t tmpfs none /tmp/m 2>/dev/null; echo "mount=$?"
unshare -U true 2>/dev/null; echo "unshare-U=$?"
unshare -m true 2>/dev/null; echo "unshare-m=$?"
unshare -Ur true 2>/dev/null; echo "unshare-Ur=$?"
python3 - <<'EOF'
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def errno(result):
    return 0 if result == 0 else ctypes.get_errno()
print("syscall-mount=%d" % errno(libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None)))
print("syscall-unshare-user=%d" % errno(libc.unshare(0x10000000)))
print("syscall-unshare-mount=%d" % errno(libc.unshare(0x00020000)))
EOF
grep -c ' /tmp/m ' /proc/self/mountinfo
echo "setuid:" $(find / -xdev -perm /6000 -type f 2>/dev/null)
"""
SOCKET_PROBE = r"""
for s in /var/run/docker.sock /run/docker.sock; do cat $s >/dev/null 2>&1; echo "cat $s=$?"; done
python3 - <<'EOF'
import socket
for path in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        print(path, "connected")
    except OSError as e:
        print(path, e.errno)
EOF
echo sockets: $(find / \( -path /proc -o -path /sys \) -prune -o -type s -print 2>/dev/null)
"""
NET_PROBE = r"""
python3 - {targets} <<'EOF'
import json, socket, sys
out = {{}}
server = socket.create_server(("127.0.0.1", 0))  # control: the sandbox's own loopback works
targets = [("127.0.0.1", server.getsockname()[1], "control")]
for arg in sys.argv[1:]:
    host, port = arg.rsplit(":", 1)
    targets.append((host, int(port), arg))
for host, port, name in targets:
    try:
        socket.create_connection((host, port), timeout=3).close()
        out[name] = "connected"
    except OSError as e:
        out[name] = e.errno or type(e).__name__
out["interfaces"] = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])
print(json.dumps(out))
EOF
for p in {ports}; do
    timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" 2>/dev/null; echo "devtcp:$p=$?"
done
"""
ENV_PROBE = "env"
PROC_PROBE = (
    "for p in /proc/[0-9]*; do echo \"== $p\"; tr '\\0' '\\n' < $p/environ; "
    "tr '\\0' ' ' < $p/cmdline; echo; done 2>&1"
)


def _statuses(text: str) -> list[dict[str, str]]:
    blocks = []
    for chunk in text.split("== ")[1:]:
        fields = dict(line.split(":\t", 1) for line in chunk.splitlines()[1:] if ":\t" in line)
        if fields:  # a process that exited while the loop ran has none
            blocks.append(fields)
    return blocks


def _host_addresses(docker_client: Any) -> list[str]:
    """The host's addresses a container might try instead of loopback."""
    found = []
    for ipam in docker_client.networks.get("bridge").attrs["IPAM"]["Config"] or []:
        if ipam.get("Gateway"):
            found.append(ipam["Gateway"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:  # the source address of the default route (a UDP connect sends no packet)
            probe.connect(("1.1.1.1", 9))
            found.append(probe.getsockname()[0])
        except OSError:
            pass
    return sorted({a for a in found if not a.startswith("127.")})


def test_inside_a_sandbox_nothing_is_privileged_reachable_or_secret(
    runs: Runs,
    container_runner: Runner,
    worker_server: LiveServer,
    docker_client: Any,
    canary: str,
) -> None:
    server_port = urlparse(worker_server.url).port
    listener = socket.create_server(("0.0.0.0", 0))  # every host address
    listen_port = listener.getsockname()[1]
    hosts = _host_addresses(docker_client)
    targets = [f"127.0.0.1:{server_port}", f"127.0.0.1:{listen_port}"]
    targets += [f"{h}:{p}" for h in hosts for p in (server_port, listen_port)]
    net = NET_PROBE.format(targets=" ".join(targets), ports=f"{server_port} {listen_port}")
    run_id = runs.start(turns(STATUS_PROBE, ESCAPE_PROBE, SOCKET_PROBE, net, ENV_PROBE, PROC_PROBE))
    status, escape, sockets, network, env, proc = (output(r) for r in runs.steps(run_id))

    # Every process of the sandbox: no capability, no-new-privileges, seccomp filter, not root.
    processes = _statuses(status)
    assert len(processes) >= 3, status  # tini, the runtime, the step's shell (and grep)
    names = {p["Name"] for p in processes}
    assert {"tini", "bash"} <= names, names
    for p in processes:
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(p[cap], 16) == 0, (cap, p)
        assert p["NoNewPrivs"] == "1", p
        assert p["Seccomp"] == "2", p
        uids = set(p["Uid"].split()) | set(p["Gid"].split())
        assert len(uids) == 1, p
        assert int(uids.pop()) >= 300_000, p

    # mount and unshare fail, in the tools and at the system call (EPERM = 1).
    said = dict(line.split("=", 1) for line in escape.splitlines() if "=" in line)
    for tool in ("mount", "unshare-U", "unshare-m", "unshare-Ur"):
        assert said[tool] != "0", (tool, escape)
    for call in ("syscall-mount", "syscall-unshare-user", "syscall-unshare-mount"):
        assert said[call] == "1", (call, escape)
    assert "\n0\nsetuid:" in escape, "/tmp/m became a mount point"
    assert escape.rstrip().endswith("setuid:"), f"setuid/setgid files in the image: {escape}"

    # No Docker (or containerd) socket: absent, not merely refused; no socket file at all
    # besides the run channel and the run's egress proxy.
    assert "cat /var/run/docker.sock=1" in sockets, sockets
    assert "cat /run/docker.sock=1" in sockets, sockets
    for path in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"):
        assert f"{path} 2\n" in sockets, sockets  # ENOENT
    found = sockets.split("sockets:", 1)[1].split()
    assert set(found) <= {f"{CHANNEL_DIR}/channel.sock", f"{CHANNEL_DIR}/egress.sock"}, found

    # No network but the sandbox's own loopback: neither the server's port nor the test's
    # listener, on loopback or on any host address.
    report = json.loads(network.splitlines()[0])
    assert report.pop("control") == "connected", "the probe cannot even reach its own loopback"
    assert report.pop("interfaces") == ["lo"], network
    assert set(report) == set(targets), report
    assert all(v != "connected" for v in report.values()), report
    for port in (server_port, listen_port):
        assert f"devtcp:{port}=1" in network, network
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing ever connected
    listener.close()

    # The environment: the sandbox's own variables only; no token, nothing of the server's.
    assert f"ACTANA_RUN_ID={run_id}" in env, env
    names = set(_ASSIGNMENT.findall(env))
    assert names <= SANDBOX_VARIABLES, sorted(names - SANDBOX_VARIABLES)
    assert os.environ[CANARY] == canary  # it is in the server's environment ...
    hashes = token_hashes(container_runner.context, run_id)
    assert len(hashes) == 4, "setup, run, upload and session tokens should have been issued"
    for seen in (env, proc):  # ... and neither it nor any token is anywhere in the sandbox
        assert CANARY not in seen, seen
        assert canary not in seen, seen
        assert "OTP_" not in seen, seen
        assert leaked_tokens(seen, hashes) == [], "a run token is visible in the sandbox"
    assert f"ACTANA_RUN_ID={run_id}" in proc, "the /proc probe read no environment at all"
    assert "PYTHONDONTWRITEBYTECODE=1" in proc, "the /proc probe could not read tini's environ"
