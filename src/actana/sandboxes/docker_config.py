"""What a container sandbox is made of: the options of the Docker backend and the exact
create-container request, hardened by default.

Every container gets: all capabilities dropped, no-new-privileges, Docker's default seccomp
profile (never `unconfined`), a read-only root filesystem, the workspace and /tmp as size-capped
tmpfs, a uid of its own (no account needed), PID / memory / CPU limits and rlimits, no network
at all (`none`: only its own loopback), no host namespace, no log driver (its output is read
over the attach connection only), and a single host path: the run channel's directory,
read-only. Nothing run-specific is in this request (see `actana.protocol.handover`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actana.sandboxes.base import SandboxLimits, known_options
from actana.sandboxes.errors import SandboxUnavailableError

LABEL = "actana.sandbox"
"""Every container of ours carries it; its value scopes the deployment (see `scope_of`)."""
LABEL_RUN = "actana.run"
LABEL_WORKER = "actana.worker"
LABEL_CREATED = "actana.created"
LABEL_UID = "actana.uid"
LABEL_CHANNEL = "actana.channel"
WORKSPACE = "/workspace"
CHANNEL_DIR = "/run/actana"
LAUNCH_COMMAND = ["python3", "-I", "-m", "actana.runtime.launch"]
CONTAINER_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class DockerOptions:
    """Settings of the docker backend (`get_backend("docker", root_dir=..., **options)`)."""

    image: str = "actana-sandbox:latest"
    docker_url: str | None = None
    cpus: float = 1.0
    workspace_bytes: int = 512 << 20
    tmp_bytes: int = 64 << 20
    uid_pool: tuple[int, int] = (300_000, 350_000)
    """[first, end): each container runs as a uid of its own, so RLIMIT_NPROC (counted per uid
    by the kernel, across containers) is per run, and no two runs share an owner."""
    warm_pool: int = 0
    """Containers kept started and waiting for a run (see `docker_pool`)."""
    check_image: bool = True
    """Refuse an image whose runtime differs from this server's (its labels say)."""
    image_packages: tuple[str, ...] = ()
    """Python packages the image must carry at least (the deployment's
    `sandbox_image_packages`; an image built with extra `--package`s still qualifies)."""
    api_timeout_sec: int = 30

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> DockerOptions:
        """Options as `get_backend` receives them.

        Raises:
            SandboxUnavailableError: unknown or invalid options.
        """
        opts = known_options(cls, options, "docker")
        for name in ("uid_pool", "image_packages"):
            if name in opts:
                opts[name] = tuple(opts[name])
        made = cls(**opts)
        lo, hi = made.uid_pool
        if not 1000 <= lo < hi:
            raise SandboxUnavailableError(f"uid_pool must be [first, end) from 1000 up: {lo}, {hi}")
        if made.cpus <= 0 or made.workspace_bytes <= 0 or made.tmp_bytes <= 0:
            raise SandboxUnavailableError("cpus, workspace_bytes and tmp_bytes must be positive")
        return made


def scope_of(root_dir: Path) -> str:
    """The deployment's label value: one per state folder, so that two deployments (or test
    runs) sharing a Docker daemon never list, reap or remove each other's containers."""
    return hashlib.sha256(str(root_dir.resolve()).encode()).hexdigest()[:16]


def _ulimits(limits: SandboxLimits) -> list[dict[str, Any]]:
    values = {
        "cpu": limits.cpu_seconds,
        "nproc": limits.max_processes,
        "fsize": limits.file_size_bytes,
        "nofile": limits.open_files,
        "core": 0,
    }
    return [{"Name": name, "Soft": v, "Hard": v} for name, v in values.items()]


def handover_rlimits(limits: SandboxLimits) -> dict[str, int]:
    """The rlimits the launcher applies (all of Docker's again, so that they hold even when a
    Docker version drops one). Memory is the cgroup's job: no RLIMIT_AS, which would break
    programs that reserve much more virtual memory than they use (JVMs, Go, V8)."""
    return {
        "CPU": limits.cpu_seconds,
        "NPROC": limits.max_processes,
        "FSIZE": limits.file_size_bytes,
        "NOFILE": limits.open_files,
        "CORE": 0,
    }


def container_request(
    options: DockerOptions,
    *,
    limits: SandboxLimits,
    uid: int,
    labels: dict[str, str],
    channel_dir: Path | None,
) -> dict[str, Any]:
    """The body of `POST /containers/create` for one sandbox."""
    mounts = []
    if channel_dir is not None:
        mounts.append(
            {"Type": "bind", "Source": str(channel_dir), "Target": CHANNEL_DIR, "ReadOnly": True}
        )
    memory = limits.memory_bytes
    host_config = {
        "CapDrop": ["ALL"],
        "CapAdd": [],
        "Privileged": False,
        "SecurityOpt": ["no-new-privileges:true"],
        "ReadonlyRootfs": True,
        "NetworkMode": "none",
        "IpcMode": "private",
        "CgroupnsMode": "private",  # its own cgroup view, not the host's (v1's default)
        "PidMode": "",
        "UTSMode": "",
        "UsernsMode": "",
        "PidsLimit": limits.max_processes,
        "Memory": memory,
        "MemorySwap": memory,  # no swap on top
        "NanoCpus": int(options.cpus * 1e9),
        "Ulimits": _ulimits(limits),
        "Tmpfs": {
            WORKSPACE: f"rw,exec,nosuid,nodev,size={options.workspace_bytes},mode=0700,"
            f"uid={uid},gid={uid}",
            "/tmp": f"rw,exec,nosuid,nodev,size={options.tmp_bytes},mode=1777",  # noqa: S108
        },
        "Mounts": mounts,
        "LogConfig": {"Type": "none", "Config": {}},
        "Init": False,  # the image's tini is PID 1
        "AutoRemove": False,  # we remove it ourselves, and know when
        "OomKillDisable": False,
        "ShmSize": 16 << 20,
    }
    return {
        "Image": options.image,
        "Cmd": LAUNCH_COMMAND,
        "User": f"{uid}:{uid}",
        "WorkingDir": WORKSPACE,
        "Env": [f"PATH={CONTAINER_PATH}", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"],
        "Hostname": "sandbox",
        "Labels": labels,
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "OpenStdin": True,
        "StdinOnce": True,  # our close of stdin reaches the launcher as EOF
        "Tty": False,
        "NetworkDisabled": True,
        "StopSignal": "SIGKILL",
        "HostConfig": host_config,
    }
