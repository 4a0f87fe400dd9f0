"""The handover: how the trusted side gives a container sandbox its run, over the container's
stdin, after the container has started.

A container is created and started before it is given a run (possibly long before: a warm pool),
so nothing run-specific may be in its configuration: no token, no file, not even the command.
Docker's own configuration is also readable by anyone who can inspect the container. The worker
therefore writes, on the attached stdin, exactly once:

    ACTANA-HANDOVER/1 <length>\\n
    <length bytes of JSON: {"argv": [...], "env": {...}, "workdir": "/workspace",
                           "rlimits": {"AS": 1073741824, ...}}>
    <a tar stream (POSIX) of the files to put into workdir, up to its end-of-archive blocks>

and then closes stdin. The launcher inside (`actana.runtime.launch`) applies it and runs `argv`
with exactly `env`. `argv == RUNTIME_ARGV` means "the runtime itself", which the launcher runs in
its own, already warmed-up process: the one-time tokens then never appear in any process's
initial environment block.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import BinaryIO

MAGIC = b"ACTANA-HANDOVER/1 "
MAX_HEADER_BYTES = 1 << 20
RUNTIME_ARGV = ["@actana-runtime"]
RLIMIT_NAMES = ("AS", "CPU", "NPROC", "FSIZE", "NOFILE", "CORE")


class HandoverError(ValueError):
    """The handover on stdin is not what the trusted side writes."""


@dataclass
class Handover:
    """The run-specific part of a container sandbox."""

    argv: list[str]
    env: dict[str, str]
    workdir: str = "/workspace"
    rlimits: dict[str, int] = field(default_factory=dict)
    """soft = hard limits (resource.RLIMIT_<name>) applied before argv runs."""

    def encode(self) -> bytes:
        """The header and JSON part (the tar stream follows it)."""
        body = json.dumps(
            {"argv": self.argv, "env": self.env, "workdir": self.workdir, "rlimits": self.rlimits},
            separators=(",", ":"),
        ).encode()
        return MAGIC + str(len(body)).encode() + b"\n" + body


def _string_list(value: object) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise HandoverError("argv must be a non-empty list of strings")
    return value


def _string_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise HandoverError("env must map strings to strings")
    return value


def read_handover(stream: BinaryIO) -> Handover:
    """Read the header and JSON part from `stream`, leaving it at the start of the tar stream.

    Raises:
        HandoverError: anything malformed (the launcher then exits without running anything).
    """
    line = stream.readline(len(MAGIC) + 12)
    if not line.startswith(MAGIC) or not line.endswith(b"\n"):
        raise HandoverError("stdin does not start with a handover header")
    try:
        length = int(line[len(MAGIC) : -1])
    except ValueError:
        raise HandoverError("bad handover length") from None
    if not 0 < length <= MAX_HEADER_BYTES:
        raise HandoverError(f"handover length {length} out of range")
    body = stream.read(length)
    if len(body) != length:
        raise HandoverError("stdin ended inside the handover")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise HandoverError(f"handover is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HandoverError("handover must be a JSON object")
    rlimits = data.get("rlimits", {})
    if not isinstance(rlimits, dict) or not all(
        k in RLIMIT_NAMES and isinstance(v, int) and v >= 0 for k, v in rlimits.items()
    ):
        raise HandoverError(f"rlimits must map {RLIMIT_NAMES} to non-negative integers")
    workdir = data.get("workdir", "/workspace")
    if not isinstance(workdir, str) or not workdir.startswith("/"):
        raise HandoverError("workdir must be an absolute path")
    return Handover(
        argv=_string_list(data.get("argv")),
        env=_string_map(data.get("env")),
        workdir=workdir,
        rlimits=rlimits,
    )
