"""The native backend: a run is a process tree on this host, in bubblewrap where it works.

What a run gets (reported in `Sandbox.isolation` and `describe()`):

- always: a fresh 0700 workspace as cwd and $HOME, exactly the spec's environment, its own
  session, rlimits (CPU, address space, file size, open files, no core dumps);
- server runs as root: a drop to an unprivileged uid (default 65534, or one uid per run from
  `uid_pool`), no capabilities, no_new_privs, and RLIMIT_NPROC (it counts per uid);
- bwrap (`use_bwrap`: "auto" uses it when the probe passes): mount, pid, net, ipc, uts and
  cgroup namespaces; a read-only /usr, a few /etc files, the Python installation and the actana
  package; private /tmp; no network but the channel socket; everything dies with the server.

Without bwrap and with a shared uid, runs can see each other (same uid); use `uid_pool` there.
See `native_launch` for the exec chain and why it looks the way it does.

"Dies with the server" is bwrap's --die-with-parent, i.e. PR_SET_PDEATHSIG, which fires when
the *thread* that started the sandbox ends: start sandboxes from the long-lived event-loop
thread (asyncio forks there), not from a short-lived worker thread.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Literal

import anyio

from actana.sandboxes import native_launch as launch
from actana.sandboxes import native_state as state
from actana.sandboxes.base import (
    Sandbox,
    SandboxBackend,
    SandboxRef,
    SandboxSpec,
    known_options,
    sandbox_environment,
)
from actana.sandboxes.channel_dir import hand_sockets_to
from actana.sandboxes.errors import SandboxSpecError, SandboxUnavailableError
from actana.sandboxes.native_process import LaunchPlan, NativeSandbox


@dataclass(frozen=True)
class NativeOptions:
    """Settings of the native backend (`get_backend("native", root_dir=..., **options)`)."""

    use_bwrap: Literal["auto", "always", "never"] = "auto"
    run_uid: int = 65534
    """Uid (and `run_gid`) sandboxes run as when the server is root and there is no pool."""
    run_gid: int = 65534
    uid_pool: tuple[int, int] | None = None
    """[first, end): one uid per live sandbox, so runs cannot signal, ptrace or read each other
    and RLIMIT_NPROC is per run. Must not overlap existing accounts."""
    deny_paths: tuple[Path, ...] = ()
    """Never mounted into a sandbox, nor anything inside them (the data dir, key files)."""
    extra_ro_paths: tuple[Path, ...] = ()
    """More host directories to mount read-only (bwrap only)."""
    stderr_log_bytes: int = 1 << 20

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> NativeOptions:
        """Options as `get_backend` receives them (lists where tuples are meant are fine).

        Raises:
            SandboxUnavailableError: unknown or invalid options.
        """
        opts = known_options(cls, options, "native")
        for key in ("deny_paths", "extra_ro_paths"):
            if key in opts:
                opts[key] = tuple(Path(p) for p in opts[key])
        if opts.get("uid_pool") is not None:
            opts["uid_pool"] = tuple(opts["uid_pool"])
        return cls(**opts).validated()

    def validated(self) -> NativeOptions:
        """Check the options once more (a directly built NativeOptions skips from_mapping).

        Raises:
            SandboxUnavailableError: the options cannot work (root uid, bad pool).
        """
        if self.use_bwrap not in ("auto", "always", "never"):
            raise SandboxUnavailableError(f"use_bwrap must be auto/always/never: {self.use_bwrap}")
        if self.run_uid <= 0 or self.run_gid <= 0:
            raise SandboxUnavailableError("run_uid and run_gid must not be root (0)")
        if self.uid_pool is not None:
            lo, hi = self.uid_pool
            if not 0 < lo < hi:
                raise SandboxUnavailableError(f"uid_pool must be [first, end) above 0: {lo}, {hi}")
            taken = sorted(p.pw_name for p in pwd.getpwall() if lo <= p.pw_uid < hi)
            if taken:
                raise SandboxUnavailableError(f"uid_pool overlaps existing accounts: {taken}")
        return self


@dataclass(frozen=True)
class HostFacts:
    """What the host offers, probed once per backend."""

    root: bool
    prlimit: str | None
    setpriv: str | None
    bwrap: str | None
    bwrap_version: str | None
    bwrap_error: str | None
    """Why bwrap is not usable (None: the probe sandbox ran)."""


class NativeSandboxBackend(SandboxBackend):
    """Runs sandboxes as host processes under `root_dir/<run_id>/`."""

    name = "native"

    def __init__(self, root_dir: Path, options: NativeOptions | None = None) -> None:
        self.root_dir = root_dir.resolve()
        self.options = (options or NativeOptions()).validated()

    @classmethod
    def from_options(cls, root_dir: Path, options: Mapping[str, Any]) -> NativeSandboxBackend:
        return cls(root_dir, NativeOptions.from_mapping(options))

    @cached_property
    def facts(self) -> HostFacts:
        """Probe the host (blocking, ~10-50 ms, once): tools, and whether bwrap really works."""
        root = os.geteuid() == 0
        which = {t: shutil.which(t, path=launch.TOOL_PATH) for t in ("prlimit", "setpriv", "bwrap")}
        bwrap, version, error = which["bwrap"], None, None
        if self.options.use_bwrap == "never":
            error = "disabled (use_bwrap=never)"
        elif bwrap is None:
            error = "bwrap not found (apt-get install bubblewrap)"
        else:
            version, error = self._probe_bwrap(bwrap, root, which["setpriv"])
        return HostFacts(root, which["prlimit"], which["setpriv"], bwrap, version, error)

    def _probe_bwrap(
        self, bwrap: str, root: bool, setpriv: str | None
    ) -> tuple[str | None, str | None]:
        """Run a sandbox with the very options real runs use (an old bwrap lacking one of them,
        or a kernel without user namespaces, fails here rather than on the first run)."""
        uid, gid = self.options.run_uid, self.options.run_gid
        inner = launch.setpriv_argv(setpriv, uid, gid) if root and setpriv else []
        run = partial(subprocess.run, capture_output=True, text=True, timeout=10, check=False)
        with tempfile.TemporaryDirectory(prefix="actana-bwrap-probe-") as tmp:
            opts = launch.bwrap_options(
                privileged=root, uid=uid, gid=gid, workspace=Path(tmp), channel_socket=None,
                ro_paths=[], env={"PATH": launch.TOOL_PATH}, tmp_bytes=1 << 20,
            )  # fmt: skip
            try:
                version = run([bwrap, "--version"]).stdout.strip() or None
                probe = run(
                    [bwrap, "--args", "0", "--", *inner, "true"],
                    input="".join(f"{o}\0" for o in opts),
                )
            except (OSError, subprocess.TimeoutExpired) as e:
                return None, f"bwrap probe failed: {e}"
        if probe.returncode != 0:
            return version, f"bwrap probe failed: {probe.stderr.strip()[-500:]}"
        return version, None

    def _uses_bwrap(self) -> bool:
        """Whether new sandboxes run in bwrap.

        Raises:
            SandboxUnavailableError: a tool the configuration needs is missing.
        """
        f = self.facts
        if f.prlimit is None or f.setpriv is None:
            raise SandboxUnavailableError("native sandbox needs prlimit and setpriv (util-linux)")
        usable = f.bwrap_error is None
        if self.options.use_bwrap == "always" and not usable:
            raise SandboxUnavailableError(f"use_bwrap=always but {f.bwrap_error}")
        return usable

    def isolation(self, *, bwrap: bool, uid: int | str) -> str:
        f = self.facts
        if bwrap:
            namespaces = launch.NAMESPACES_PRIVILEGED if f.root else launch.NAMESPACES_UNPRIVILEGED
            text = f"native+bwrap({','.join(namespaces)})"
        else:
            text = "native(process)"
        return f"{text}+uid({uid})" if f.root else text

    async def create(self, spec: SandboxSpec) -> Sandbox:
        return await anyio.to_thread.run_sync(self._create, spec)

    def _create(self, spec: SandboxSpec) -> NativeSandbox:
        bwrap = self._uses_bwrap()
        root, opts = self.facts.root, self.options
        marker: dict[str, Any] = {
            "backend": self.name, "run_id": spec.run_id, "worker_id": spec.worker_id,
            "created_at": datetime.now(UTC).isoformat(), "bwrap": bwrap,
            "uid": opts.run_uid if root else os.getuid(),
            "gid": opts.run_gid if root else os.getgid(),
            "exclusive_uid": root and opts.uid_pool is not None, "pid": None, "start_ticks": None,
        }  # fmt: skip
        pool = opts.uid_pool if root else None
        run_dir = state.make_run_dir(self.root_dir, spec.run_id, marker, pool)
        try:
            uid, gid = marker["uid"], marker["gid"]
            workspace = state.make_workspace(run_dir, uid if root else None, gid)
            plan = self._plan(spec, workspace, bwrap, uid, gid)
        except BaseException:
            state.remove_tree(run_dir)
            raise
        return NativeSandbox(
            spec, backend=self.name, isolation=self.isolation(bwrap=bwrap, uid=uid),
            workspace=workspace, run_dir=run_dir, plan=plan, marker=marker,
            stderr_log_bytes=opts.stderr_log_bytes,
        )  # fmt: skip

    def _plan(
        self, spec: SandboxSpec, workspace: Path, bwrap: bool, uid: int, gid: int
    ) -> LaunchPlan:
        f, root = self.facts, self.facts.root
        assert f.prlimit is not None  # checked by _uses_bwrap, as is setpriv
        env = sandbox_environment(spec, str(workspace))
        command = list(spec.command)
        found = command[0] if "/" in command[0] else shutil.which(command[0], path=env["PATH"])
        if found is None:
            raise SandboxSpecError(f"command {command[0]!r} not found on the sandbox PATH")
        owner = (uid, gid) if root else None
        sock = spec.channel_socket
        if sock is not None and root:
            try:
                hand_sockets_to(sock.parent, uid, gid)  # connect() needs write permission
            except OSError as e:
                raise SandboxSpecError(f"channel socket {sock}: {e.strerror}") from e
        # RLIMIT_NPROC counts per uid: only set where the uid is the sandbox's (a dropped uid,
        # or bwrap's user namespace), never on the uid the server itself runs as.
        chain = launch.rlimit_argv(f.prlimit, spec.limits, nproc=root or bwrap)
        assert f.setpriv is not None
        if root:
            chain += launch.setpriv_argv(f.setpriv, uid, gid)
        elif not bwrap:  # bwrap sets no_new_privs itself
            chain += [f.setpriv, "--no-new-privs", "--"]
        if not bwrap:
            for path, access in ((found, os.X_OK), (workspace, os.W_OK | os.X_OK), (sock, os.W_OK)):
                why = path and state.unreachable_for(Path(path), uid, gid, access)
                if why:
                    raise SandboxSpecError(f"the sandbox user cannot reach {path}: {why}")
            return LaunchPlan([*chain, *command], env, None, wrapped_exit=False, owner=owner)
        ro_paths = [*launch.app_paths(), *self.options.extra_ro_paths]
        denied = [Path(p) for p in launch.DENIED_PATHS]
        launch.check_sources(ro_paths, denied, self._private_paths())
        launch.check_sources([workspace, *([sock] if sock else [])], denied, [])
        if not launch.mounted(Path(found), ro_paths, workspace):
            raise SandboxSpecError(f"command {found} is not inside the sandbox's mounts")
        options = launch.bwrap_options(
            privileged=root, uid=uid, gid=gid, workspace=workspace, channel_socket=sock,
            ro_paths=ro_paths, env=env, tmp_bytes=spec.limits.memory_bytes // 2,
        )  # fmt: skip
        assert f.bwrap is not None
        return LaunchPlan(
            [f.bwrap, "--", *chain, *command], {}, options, wrapped_exit=True, owner=owner
        )

    def _private_paths(self) -> list[Path]:
        return [self.root_dir, *(p.resolve() for p in self.options.deny_paths)]

    async def list_own(self, worker_id: str | None = None) -> list[SandboxRef]:
        refs = await anyio.to_thread.run_sync(self._list)
        return [r for r in refs if worker_id is None or r.worker_id == worker_id]

    def _list(self) -> list[SandboxRef]:
        refs = []
        for run_dir in state.run_dirs(self.root_dir):
            marker = state.read_marker(run_dir) or {}
            try:
                created = datetime.fromisoformat(marker["created_at"])
            except (KeyError, TypeError, ValueError):
                created = datetime.fromtimestamp(run_dir.stat().st_mtime, UTC)
            refs.append(SandboxRef(
                backend=self.name, run_id=str(marker.get("run_id", run_dir.name)),
                worker_id=str(marker.get("worker_id", "")), created_at=created,
                path=run_dir, handle=run_dir.name,
            ))  # fmt: skip
        return refs

    async def remove_by_ref(self, ref: SandboxRef) -> None:
        run_dir = self.root_dir / ref.handle
        if run_dir.parent != self.root_dir or ref.handle.startswith("."):
            raise SandboxSpecError(f"{ref.handle!r} is not a sandbox of {self.root_dir}")
        await NativeSandbox.reap(run_dir)

    def describe(self) -> dict[str, object]:
        f = self.facts
        isolation: str | None = None
        reason: str | None = None
        try:
            bwrap = self._uses_bwrap()
        except SandboxUnavailableError as e:
            available, reason = False, e.message
        else:
            available = True
            pool = self.options.uid_pool
            uid = f"pool {pool[0]}-{pool[1] - 1}" if pool else self.options.run_uid
            isolation = self.isolation(bwrap=bwrap, uid=uid)
        return {
            "backend": self.name, "available": available, "isolation": isolation, "reason": reason,
            "use_bwrap": self.options.use_bwrap, "running_as_root": f.root,
            "bwrap": {"path": f.bwrap, "version": f.bwrap_version,
                      "usable": f.bwrap_error is None, "error": f.bwrap_error},
            "run_uid": self.options.run_uid, "uid_pool": self.options.uid_pool,
            "prlimit": f.prlimit, "setpriv": f.setpriv, "root_dir": str(self.root_dir),
        }  # fmt: skip
