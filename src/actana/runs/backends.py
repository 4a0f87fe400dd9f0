"""The sandbox backends this deployment uses, built from its settings, and which one a run of
each flavor gets."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from actana.sandboxes import SandboxBackend, SandboxLimits, get_backend
from actana.sandboxes.docker_image_packages import wanted_packages
from actana.sandboxes.errors import ImageBuildError
from actana.settings import Settings

FALLBACK_HINT = (
    "start a Docker daemon and build the image (`actana sandbox build-image`), or set"
    " ACTANA_SANDBOX_FALLBACK_NATIVE=1 to let such runs fall back to the native sandbox"
)


def native_backend(settings: Settings) -> SandboxBackend:
    """The native backend, configured: bubblewrap policy, unprivileged uid(s), denied paths."""
    start = settings.sandbox_uid_pool_start
    pool = (start, start + settings.sandbox_uid_pool_size) if start is not None else None
    settings.sandboxes_dir.mkdir(parents=True, exist_ok=True)
    return get_backend(
        "native",
        root_dir=settings.sandboxes_dir,
        use_bwrap=settings.native_bwrap,
        run_uid=settings.sandbox_uid,
        run_gid=settings.sandbox_uid,
        uid_pool=pool,
        # Never visible to an agent: the database, the dev master key, other runs' files.
        deny_paths=(settings.data_dir.resolve(),),
    )


def _image_packages(settings: Settings) -> tuple[str, ...]:
    """The configured packages as the build labels them (stripped, without repeats); a list
    the build would refuse is compared as it is, and `build-image` then says what is wrong."""
    try:
        return tuple(wanted_packages(settings.sandbox_image_packages))
    except ImageBuildError:
        return tuple(settings.sandbox_image_packages)


def docker_backend(settings: Settings) -> SandboxBackend:
    """The docker backend, configured (building it contacts no daemon)."""
    start = settings.container_uid_pool_start
    return get_backend(
        "docker",
        root_dir=settings.containers_dir,
        image=settings.sandbox_image,
        docker_url=settings.docker_url,
        cpus=settings.container_cpus,
        workspace_bytes=settings.container_workspace_mb << 20,
        tmp_bytes=settings.container_tmp_mb << 20,
        uid_pool=(start, start + settings.container_uid_pool_size),
        warm_pool=settings.container_warm_pool,
        image_packages=_image_packages(settings),
    )


def sandbox_limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(
        memory_bytes=settings.container_memory_mb << 20,
        max_processes=settings.container_pids,
    )


@dataclass(frozen=True)
class Choice:
    """The backend a run gets, or why it gets none."""

    backend: SandboxBackend | None
    notice: str = ""
    """Said in the run's log: e.g. that a container run fell back to native, and why."""
    isolation: str = "unavailable"


class SandboxBackends:
    """Both backends of a process, built once; `choose` picks one per run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def native(self) -> SandboxBackend:
        return native_backend(self.settings)

    @cached_property
    def container(self) -> SandboxBackend:
        return docker_backend(self.settings)

    def all(self) -> list[SandboxBackend]:
        return [self.native, self.container]

    def choose(self, flavor: str) -> Choice:
        """The backend for a run of `flavor` (blocking: asks the Docker daemon).

        `container` gets Docker when its daemon answers and the image is right; otherwise the
        native sandbox if the deployment allows the fallback, else nothing (and the reason).
        """
        if flavor != "container":
            return Choice(self.native, isolation=str(self.native.describe().get("isolation")))
        described = self.container.describe()
        if described.get("available"):
            return Choice(self.container, isolation=str(described.get("isolation")))
        reason = str(described.get("reason") or "the container backend is unavailable")
        if not self.settings.sandbox_fallback_native:
            return Choice(None, notice=f"the container flavor is unavailable: {reason}; "
                          f"{FALLBACK_HINT}")  # fmt: skip
        native = self.native.describe()
        return Choice(
            self.native,
            notice=f"container flavor unavailable ({reason}): falling back to the native sandbox",
            isolation=str(native.get("isolation")),
        )
