"""The sandbox backends this deployment uses, built from its settings."""

from __future__ import annotations

from actana.sandboxes import SandboxBackend, get_backend
from actana.settings import Settings


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
