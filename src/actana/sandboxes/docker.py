"""The docker backend: one fresh, locked-down container per run (see `docker_config` for what
each container is made of, `docker_sandbox` for its life).

Host state per sandbox is the container (labelled with the deployment's scope, the run, the
worker and its uid) and a staging folder `root_dir/<run_id>/` for the input files until they are
handed over. `list_own` finds both, so the reaper removes what a crashed worker left.
"""

from __future__ import annotations

import gc
import secrets
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import anyio
import docker
from docker.errors import APIError, DockerException, NotFound

from actana.protocol.handover import RUNTIME_ARGV
from actana.protocol.payloads import ENV_CHANNEL
from actana.sandboxes.base import (
    RUN_ID_PATTERN,
    Sandbox,
    SandboxBackend,
    SandboxLimits,
    SandboxRef,
    SandboxSpec,
    sandbox_environment,
)
from actana.sandboxes.channel_dir import hand_sockets_to, mirror_into, remove_tree
from actana.sandboxes.docker_config import (
    CHANNEL_DIR,
    LABEL,
    LABEL_CHANNEL,
    LABEL_CREATED,
    LABEL_RUN,
    LABEL_UID,
    LABEL_WORKER,
    WORKSPACE,
    DockerOptions,
    container_request,
    scope_of,
)
from actana.sandboxes.docker_image import inspect_image
from actana.sandboxes.docker_pool import WarmContainer, WarmPool
from actana.sandboxes.docker_sandbox import WAIT_LIMITER, DockerSandbox
from actana.sandboxes.errors import (
    SandboxCleanupError,
    SandboxExistsError,
    SandboxUnavailableError,
)

IMAGE_CHECK_TTL_SEC = 10.0
DESCRIBE_TTL_SEC = 2.0
API_CONNECTIONS = 64
"""Kept-alive connections to the daemon: every live sandbox may have a call in flight."""
ISOLATION = "docker(seccomp,no-caps,no-new-privs,ro-rootfs,net=none,pids,mem,cpu)"


class DockerSandboxBackend(SandboxBackend):
    name = "docker"

    def __init__(self, root_dir: Path, options: DockerOptions | None = None) -> None:
        self.root_dir = root_dir.resolve()
        self.options = options or DockerOptions()
        self.scope = scope_of(self.root_dir)
        self._uids: set[int] = set()
        self._lock = threading.Lock()
        self._image_ok_until = 0.0
        self._described: tuple[dict[str, object] | None, float] = (None, 0.0)

    @classmethod
    def from_options(cls, root_dir: Path, options: Mapping[str, Any]) -> DockerSandboxBackend:
        return cls(root_dir, DockerOptions.from_mapping(options))

    @cached_property
    def api(self) -> docker.APIClient:
        """The low-level client (blocking; built on first use, negotiating the API version).

        Raises:
            SandboxUnavailableError: no daemon answers.
        """
        with warnings.catch_warnings():
            # docker-py leaks the socket of a failed connect; its ResourceWarning would surface
            # at some later garbage collection, far from here: collect it now, quietly.
            warnings.simplefilter("ignore", ResourceWarning)
            try:
                return self._connect()
            except DockerException as exc:
                # Keep only the text: the exception's traceback holds the leaked socket.
                failure = _short(exc)
            gc.collect()
        where = self.options.docker_url or "DOCKER_HOST or the default socket"
        raise SandboxUnavailableError(f"no Docker daemon reachable ({where}): {failure}")

    def _connect(self) -> docker.APIClient:
        if self.options.docker_url:
            return docker.APIClient(
                base_url=self.options.docker_url,
                version="auto",
                timeout=self.options.api_timeout_sec,
                max_pool_size=API_CONNECTIONS,
            )
        return docker.from_env(
            version="auto",
            timeout=self.options.api_timeout_sec,
            max_pool_size=API_CONNECTIONS,
        ).api

    def isolation(self, uid: int | None = None) -> str:
        return ISOLATION if uid is None else f"{ISOLATION}+uid({uid})"

    def runtime_command(self) -> list[str]:
        return list(RUNTIME_ARGV)  # the image's launcher runs it in its warmed-up process

    # -- uids ---------------------------------------------------------------------------------

    def _take_uid(self) -> int:
        lo, hi = self.options.uid_pool
        with self._lock:
            for _ in range(64):
                uid = lo + secrets.randbelow(hi - lo)
                if uid not in self._uids:
                    self._uids.add(uid)
                    return uid
        raise SandboxUnavailableError("the container uid pool is exhausted")

    def release_uid(self, uid: int) -> None:
        with self._lock:
            self._uids.discard(uid)

    # -- creating -----------------------------------------------------------------------------

    def _check_image(self) -> None:
        """Refuse an image that is missing or carries another runtime (checked every
        IMAGE_CHECK_TTL_SEC at most: one inspect call)."""
        if not self.options.check_image or time.monotonic() < self._image_ok_until:
            return
        status = inspect_image(self.api, self.options.image, at_least=self.options.image_packages)
        if status.problem is not None:
            raise SandboxUnavailableError(status.problem)
        self._image_ok_until = time.monotonic() + IMAGE_CHECK_TTL_SEC

    def labels(self, run_id: str, worker_id: str, uid: int) -> dict[str, str]:
        return {
            LABEL: self.scope,
            LABEL_RUN: run_id,
            LABEL_WORKER: worker_id,
            LABEL_UID: str(uid),
            LABEL_CREATED: datetime.now(UTC).isoformat(),
        }

    def _new_container(
        self,
        *,
        run_id: str,
        worker_id: str,
        uid: int,
        limits: SandboxLimits,
        channel_dir: Path | None,
    ) -> str:
        """Create (not start) a container; its id.

        Raises:
            SandboxExistsError: a container of that name exists.
            SandboxUnavailableError: the daemon refused or is gone.
        """
        labels = self.labels(run_id, worker_id, uid)
        if channel_dir is not None:
            labels[LABEL_CHANNEL] = str(channel_dir)
        request = container_request(
            self.options, limits=limits, uid=uid, labels=labels, channel_dir=channel_dir
        )
        try:
            created = self.api.create_container_from_config(  # type: ignore[no-untyped-call]
                request, name=f"actana-{run_id}" if run_id else None
            )
        except APIError as exc:
            if exc.status_code == 409:
                raise SandboxExistsError(f"a container for run {run_id} exists") from exc
            raise SandboxUnavailableError(f"docker could not create the sandbox: {exc}") from exc
        except DockerException as exc:
            raise SandboxUnavailableError(f"docker could not create the sandbox: {exc}") from exc
        return str(created["Id"])

    def _state_dir(self, run_id: str) -> Path:
        state_dir = self.root_dir / run_id
        try:
            self.root_dir.mkdir(parents=True, exist_ok=True)
            state_dir.mkdir(mode=0o700)
        except FileExistsError:
            raise SandboxExistsError(f"a sandbox for run {run_id} exists already") from None
        (state_dir / "workspace").mkdir(mode=0o700)
        return state_dir

    async def create(self, spec: SandboxSpec) -> Sandbox:
        if self.pool is not None and spec.channel_socket is not None:
            warm = self.pool.take(spec.limits, spec.worker_id)
            if warm is not None:
                adopted = await anyio.to_thread.run_sync(self._adopt, spec, warm)
                if adopted is not None:
                    return adopted
        return await anyio.to_thread.run_sync(self._create, spec)

    def _create(self, spec: SandboxSpec) -> DockerSandbox:
        self._check_image()
        state_dir = self._state_dir(spec.run_id)
        uid = self._take_uid()
        try:
            if spec.channel_socket is not None:
                hand_sockets_to(spec.channel_socket.parent, uid, uid)
            container_id = self._new_container(
                run_id=spec.run_id,
                worker_id=spec.worker_id,
                uid=uid,
                limits=spec.limits,
                channel_dir=spec.channel_socket.parent if spec.channel_socket else None,
            )
        except BaseException:
            self.release_uid(uid)
            shutil.rmtree(state_dir, ignore_errors=True)
            raise
        return DockerSandbox(
            spec,
            owner=self,
            container_id=container_id,
            uid=uid,
            state_dir=state_dir,
            env=self.environment(spec),
            started=False,
        )

    # -- the warm pool ------------------------------------------------------------------------

    @cached_property
    def pool(self) -> WarmPool | None:
        if self.options.warm_pool <= 0:
            return None
        return WarmPool(self.options.warm_pool, self._make_warm, self._remove_warm)

    async def prepare(self, worker_id: str, limits: SandboxLimits) -> None:
        if self.pool is not None:
            await anyio.to_thread.run_sync(self._check_image)
            self.pool.refill(limits, worker_id)

    def refill_pool(self, limits: SandboxLimits, worker_id: str) -> None:
        """Top the warm pool up (called when a sandbox is removed: between runs, not during)."""
        if self.pool is not None:
            self.pool.refill(limits, worker_id)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def _make_warm(
        self, limits: SandboxLimits, worker_id: str, channel_dir: Path
    ) -> WarmContainer:
        uid = self._take_uid()
        try:
            container_id = await anyio.to_thread.run_sync(
                lambda: self._new_container(
                    run_id="", worker_id=worker_id, uid=uid, limits=limits, channel_dir=channel_dir
                ),
                limiter=WAIT_LIMITER,
            )
            warm = WarmContainer(container_id, uid, channel_dir, limits, worker_id)
            await anyio.to_thread.run_sync(self.api.start, container_id, limiter=WAIT_LIMITER)
        except BaseException:
            self.release_uid(uid)
            raise
        return warm

    async def _remove_warm(self, warm: WarmContainer) -> None:
        await self.remove_container(warm.container_id)
        remove_tree(warm.channel_dir, ignore_errors=True)
        self.release_uid(warm.uid)

    def _adopt(self, spec: SandboxSpec, warm: WarmContainer) -> DockerSandbox | None:
        """Give a warm container to `spec`'s run; None (and the container removed) when its
        channel cannot be linked in, so the caller makes a cold one."""
        assert spec.channel_socket is not None
        try:
            mirror_into(spec.channel_socket.parent, warm.channel_dir)
            hand_sockets_to(warm.channel_dir, warm.uid, warm.uid)
            state_dir = self._state_dir(spec.run_id)
            # Labels are fixed at creation: the name is how the container now says whose it
            # is (`list_own`, the reaper, an operator's `docker ps`).
            self.api.rename(warm.container_id, f"actana-{spec.run_id}")
        except (OSError, DockerException):
            anyio.from_thread.run(self._remove_warm, warm)
            return None
        return DockerSandbox(
            spec,
            owner=self,
            container_id=warm.container_id,
            uid=warm.uid,
            state_dir=state_dir,
            env=self.environment(spec),
            started=True,
            channel_dir=warm.channel_dir,
        )

    def environment(self, spec: SandboxSpec) -> dict[str, str]:
        """The command's exact environment; the channel variable points to where the container
        sees the socket."""
        env = sandbox_environment(spec, WORKSPACE)
        if spec.channel_socket is not None:
            env[ENV_CHANNEL] = f"unix:{CHANNEL_DIR}/{spec.channel_socket.name}"
        return env

    # -- finding and removing -----------------------------------------------------------------

    async def remove_container(self, container_id: str) -> None:
        def remove() -> None:
            try:
                self.api.remove_container(container_id, force=True, v=True)
            except NotFound:
                pass
            except APIError as exc:
                if exc.status_code != 409 or "already in progress" not in str(exc):
                    raise SandboxCleanupError(
                        f"docker could not remove {container_id}: {exc}"
                    ) from exc

        await anyio.to_thread.run_sync(remove)

    async def list_own(self, worker_id: str | None = None) -> list[SandboxRef]:
        return await anyio.to_thread.run_sync(self._list_own, worker_id)

    def _list_own(self, worker_id: str | None) -> list[SandboxRef]:
        filters = [f"{LABEL}={self.scope}"]
        if worker_id is not None:
            filters.append(f"{LABEL_WORKER}={worker_id}")
        try:
            containers = self.api.containers(all=True, filters={"label": filters})
        except DockerException as exc:
            raise SandboxUnavailableError(f"cannot list containers: {exc}") from exc
        refs = []
        for item in containers:
            labels = item.get("Labels") or {}
            run_id = labels.get(LABEL_RUN) or _run_of(item.get("Names") or [])
            # A warm container's state is its channel directory; a run's, its staging folder.
            path = (
                self.root_dir / run_id
                if labels.get(LABEL_RUN)
                else _pool_dir(labels.get(LABEL_CHANNEL))
            )
            refs.append(
                SandboxRef(
                    backend=self.name,
                    run_id=run_id,
                    worker_id=labels.get(LABEL_WORKER, ""),
                    created_at=datetime.fromtimestamp(int(item.get("Created", 0)), UTC),
                    path=path if path is not None and path.exists() else None,
                    handle=item["Id"],
                )
            )
        if worker_id is None:
            refs += self._stray_state_dirs({r.run_id for r in refs})
        return refs

    def _stray_state_dirs(self, known: set[str]) -> list[SandboxRef]:
        """Staging folders with no container (a worker died between the two)."""
        if not self.root_dir.is_dir():
            return []
        return [
            SandboxRef(
                backend=self.name,
                run_id=entry.name,
                worker_id="",
                created_at=datetime.fromtimestamp(entry.stat().st_mtime, UTC),
                path=entry,
                handle="",
            )
            for entry in sorted(self.root_dir.iterdir())
            if entry.is_dir() and entry.name not in known
        ]

    async def remove_by_ref(self, ref: SandboxRef) -> None:
        if ref.handle:
            await self.remove_container(ref.handle)
        if ref.path is not None and _pool_dir(str(ref.path)) is not None:
            shutil.rmtree(ref.path, ignore_errors=True)
        if ref.run_id:
            await anyio.to_thread.run_sync(
                lambda: shutil.rmtree(self.root_dir / ref.run_id, ignore_errors=True)
            )

    def describe(self) -> dict[str, object]:
        """The daemon and the image as they are now; a good answer is reused for
        DESCRIBE_TTL_SEC (every run asks, and the answer rarely changes), a bad one never."""
        cached, until = self._described
        if cached is not None and time.monotonic() < until:
            return dict(cached)
        facts = self._describe()
        if facts["available"]:
            self._described = (facts, time.monotonic() + DESCRIBE_TTL_SEC)
        if self.pool is not None:
            facts["warm_pool"] = {"size": self.pool.size, "ready": self.pool.ready}
        return facts

    def _describe(self) -> dict[str, object]:
        facts: dict[str, object] = {
            "backend": self.name,
            "image": self.options.image,
            "isolation": ISOLATION,
        }
        try:
            version = self.api.version()
            facts["daemon"] = f"docker {version.get('Version')} (API {version.get('ApiVersion')})"
            status = inspect_image(
                self.api, self.options.image, at_least=self.options.image_packages
            )
        except SandboxUnavailableError as exc:
            return {**facts, "available": False, "reason": str(exc)}
        except DockerException as exc:
            return {**facts, "available": False, "reason": f"the Docker daemon: {_short(exc)}"}
        facts["image_id"] = status.image_id
        if status.problem is not None:
            return {**facts, "available": False, "reason": status.problem}
        return {**facts, "available": True, "reason": None}


def _run_of(names: list[str]) -> str:
    """The run a warm container was given, from the name it got then (`/actana-<run id>`)."""
    for name in names:
        if name.startswith("/actana-") and RUN_ID_PATTERN.fullmatch(name[len("/actana-") :]):
            return name[len("/actana-") :]
    return ""


def _pool_dir(label: str | None) -> Path | None:
    """A warm container's channel directory from its label, only if it is one we make (a label
    is data: never delete a path just because a container names it)."""
    if not label:
        return None
    path = Path(label)
    if path.parent != Path(tempfile.gettempdir()) or not path.name.startswith("actana-pool-"):
        return None
    return path


def _short(exc: Exception) -> str:
    """docker-py's errors wrap requests' wrapping urllib3's: keep the innermost reason."""
    text = str(exc)
    for marker in ("FileNotFoundError(", "ConnectionRefusedError(", "PermissionError("):
        if marker in text:
            return text[text.index(marker) :].split(")", 1)[0] + ")"
    return text[:300]
