"""The docker backend's pure parts, without a daemon: the create request is hardened whatever
the options, the attach stream demultiplexes Docker's frames and refuses others, and exit
statuses map to the sandbox contract's."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import pytest

from actana.sandboxes import docker_stream
from actana.sandboxes.base import SandboxLimits
from actana.sandboxes.docker_config import (
    CHANNEL_DIR,
    DockerOptions,
    container_request,
    handover_rlimits,
    scope_of,
)
from actana.sandboxes.docker_sandbox import exit_code
from actana.sandboxes.docker_stream import AttachStream
from actana.sandboxes.errors import SandboxUnavailableError


def _request(channel_dir: Path | None = Path("/tmp/actana-ch-x")) -> dict:
    limits = SandboxLimits(memory_bytes=256 << 20, max_processes=77)
    return container_request(
        DockerOptions(image="img:1", cpus=0.5, workspace_bytes=1 << 20, tmp_bytes=2 << 20),
        limits=limits,
        uid=300_123,
        labels={"actana.sandbox": "scope"},
        channel_dir=channel_dir,
    )


def test_the_create_request_is_locked_down():
    request = _request()
    host = request["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert host["CapAdd"] == []
    assert host["Privileged"] is False
    assert host["ReadonlyRootfs"] is True
    assert host["SecurityOpt"] == ["no-new-privileges:true"]  # and no seccomp=unconfined
    assert host["NetworkMode"] == "none"
    assert request["NetworkDisabled"] is True
    assert (host["IpcMode"], host["CgroupnsMode"]) == ("private", "private")
    assert (host["PidMode"], host["UTSMode"], host["UsernsMode"]) == ("", "", "")
    assert (host["PidsLimit"], host["Memory"], host["MemorySwap"]) == (77, 256 << 20, 256 << 20)
    assert host["NanoCpus"] == 500_000_000
    assert request["User"] == "300123:300123"
    assert "size=1048576" in host["Tmpfs"]["/workspace"]
    assert "uid=300123" in host["Tmpfs"]["/workspace"]
    assert "size=2097152" in host["Tmpfs"]["/tmp"]
    assert host["Mounts"] == [
        {"Type": "bind", "Source": "/tmp/actana-ch-x", "Target": CHANNEL_DIR, "ReadOnly": True}
    ]
    assert host.get("Binds") is None
    assert host.get("Devices") is None
    assert host["LogConfig"]["Type"] == "none"
    assert request["StdinOnce"] is True  # our close of stdin must reach the launcher
    assert not any("OTP" in item for item in request["Env"])


def test_without_a_channel_nothing_of_the_host_is_mounted():
    assert _request(channel_dir=None)["HostConfig"]["Mounts"] == []


def test_memory_is_the_cgroups_job_not_an_address_space_rlimit():
    limits = SandboxLimits(max_processes=9, open_files=10)
    rlimits = handover_rlimits(limits)
    assert "AS" not in rlimits
    assert (rlimits["NPROC"], rlimits["NOFILE"], rlimits["CORE"]) == (9, 10, 0)


@pytest.mark.parametrize(
    "options",
    [{"colour": "red"}, {"uid_pool": (0, 10)}, {"uid_pool": (5000, 5000)}, {"cpus": 0}],
)
def test_bad_options_are_refused(options):
    with pytest.raises(SandboxUnavailableError):
        DockerOptions.from_mapping(options)


def test_deployments_sharing_a_daemon_get_different_scopes(tmp_path: Path):
    assert scope_of(tmp_path / "a") != scope_of(tmp_path / "b")
    assert scope_of(tmp_path / "a") == scope_of(tmp_path / "x" / ".." / "a")


@pytest.mark.parametrize(("status", "code"), [(0, 0), (7, 7), (137, -9), (143, -15), (255, 255)])
def test_exit_statuses_map_signals_to_negative_codes(status, code):
    assert exit_code(status) == code


def _frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


async def _read_all(raw: bytes) -> tuple[list[bytes], AttachStream]:
    ours, theirs = socket.socketpair()
    stream = AttachStream(ours, stderr_keep=10)
    theirs.sendall(raw)
    theirs.close()
    try:
        return [chunk async for chunk in stream.stdout()], stream
    finally:
        stream.close()


@pytest.mark.parametrize("read_bytes", [1, 3, 1 << 16])
def test_frames_are_demultiplexed_even_when_split_anywhere(monkeypatch, read_bytes):
    monkeypatch.setattr(docker_stream, "_READ_BYTES", read_bytes)  # recv() returns that much
    raw = _frame(1, b"hello ") + _frame(2, b"oops-0123456789") + _frame(1, b"world\n")
    chunks, stream = asyncio.run(_read_all(raw))
    assert b"".join(chunks) == b"hello world\n"
    kept = stream.stderr_tail(100)  # a bounded tail: at least the last stderr_keep bytes
    assert kept.endswith(b"0123456789")
    assert b"oops-0123456789".endswith(kept)
    assert stream.stderr_tail(4) == b"6789"


def test_a_frame_docker_never_sends_is_refused():
    with pytest.raises(SandboxUnavailableError, match="bad frame"):
        asyncio.run(_read_all(_frame(1, b"ok") + _frame(9, b"evil")))


def test_a_truncated_frame_ends_the_stream_without_inventing_bytes():
    chunks, _ = asyncio.run(_read_all(_frame(1, b"abc") + struct.pack(">BxxxL", 1, 100) + b"xy"))
    assert b"".join(chunks) == b"abcxy"
