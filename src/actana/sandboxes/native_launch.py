"""How the native backend launches a command: the exec chain and the bubblewrap arguments.

The chain, outermost first (each link execs the next, so the pid stays the same unless bwrap
forks its namespace init):

    bwrap --args FD -- prlimit ... -- setpriv ... -- COMMAND     (bwrap, server is root)
    bwrap --args FD -- prlimit ... -- COMMAND                    (bwrap, server not root)
    prlimit ... -- setpriv ... -- COMMAND                        (no bwrap, root)
    prlimit ... -- setpriv --no-new-privs -- COMMAND             (no bwrap, not root)

Why small util-linux binaries rather than `preexec_fn` or a Python wrapper: `preexec_fn` runs
Python in a forked copy of a threaded server (deadlock-prone, and it rules out vfork), and a
`python -I -S -c` wrapper costs a second interpreter start (+7 ms over a 13 ms `python -c
pass`, medians of 60 here) where prlimit and setpriv together are within noise (~+1 ms).

Why bwrap runs as root and setpriv drops privileges *inside* it, instead of bwrap's own --uid:
as root, bwrap's user namespace would map the sandbox uid to host uid 0, so every root-owned
file visible inside (the run's own workspace files, /etc entries) would be readable by their
"owner". Dropping to a real unprivileged host uid keeps kernel permission checks honest. bwrap
must stay root until the mounts are done, which also lets it bind an interpreter living under
a directory the sandbox uid could not traverse (e.g. a pyenv under /root).

Why the bwrap options travel through `--args FD`: `--setenv NAME VALUE` on the command line is
world-readable in /proc/PID/cmdline for the life of the sandbox; OTP tokens must not be.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from actana.sandboxes.base import SandboxLimits
from actana.sandboxes.errors import SandboxSpecError

NAMESPACES_PRIVILEGED = ("mount", "pid", "net", "ipc", "uts", "cgroup")
NAMESPACES_UNPRIVILEGED = ("user", *NAMESPACES_PRIVILEGED)
TOOL_PATH = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin"
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin")
# Only what programs need from /etc, not all of it: a non-root server's own config files in
# /etc (readable by its uid, and hence by a sandbox of a non-root server) stay out of sight.
ETC_ENTRIES = (
    "alternatives", "bash.bashrc", "ca-certificates", "ca-certificates.conf", "debian_version",
    "group", "host.conf", "hosts", "inputrc", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
    "localtime", "magic", "mime.types", "nsswitch.conf", "os-release", "passwd", "profile",
    "protocols", "python3", f"python3.{sys.version_info.minor}", "services", "ssl", "timezone",
)  # fmt: skip
# Never mounted into a sandbox, nor any directory containing them.
DENIED_PATHS = (
    "/", "/root", "/home", "/var/lib/postgresql", "/var/lib/docker", "/var/run/docker.sock",
    "/run/docker.sock", "/run", "/var/run", "/proc", "/sys", "/dev", "/boot",
)  # fmt: skip


def rlimit_argv(prlimit: str, limits: SandboxLimits, *, nproc: bool) -> list[str]:
    """prlimit options for the limits, soft = hard so the sandbox cannot raise them.

    Capped at our own hard limits: without CAP_SYS_RESOURCE prlimit could not raise them, and a
    sandbox should never get more than the server has anyway.
    """

    def cap(which: int, wanted: int) -> int:
        hard = resource.getrlimit(which)[1]
        return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)

    argv = [
        prlimit,
        f"--cpu={cap(resource.RLIMIT_CPU, limits.cpu_seconds)}",
        f"--as={cap(resource.RLIMIT_AS, limits.memory_bytes)}",
        f"--fsize={cap(resource.RLIMIT_FSIZE, limits.file_size_bytes)}",
        f"--nofile={cap(resource.RLIMIT_NOFILE, limits.open_files)}",
        "--core=0",  # a core dump would land in the workspace and carry the process's memory
    ]
    if nproc:
        argv.append(f"--nproc={cap(resource.RLIMIT_NPROC, limits.max_processes)}")
    return [*argv, "--"]


def setpriv_argv(setpriv: str, uid: int, gid: int) -> list[str]:
    """Become uid/gid for good: no groups, no capabilities in any set, no_new_privs."""
    return [
        setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs",
        "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--",
    ]  # fmt: skip


def app_paths() -> list[Path]:
    """The Python installation(s) and the directory holding the `actana` package.

    sys.prefix is the venv, base_prefix the interpreter it points to; both are needed for
    `sys.executable -m actana.runtime` to start inside. Paths under a system dir are already
    mounted and are left out, as are paths inside another listed path.
    """
    import actana

    candidates = {
        Path(p).resolve()
        for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    }
    candidates.add(Path(actana.__file__).resolve().parent.parent)
    candidates.add(Path(sys.executable).parent.resolve())
    outside = [p for p in candidates if not any(_within(p, Path(d)) for d in SYSTEM_DIRS)]
    return sorted(p for p in outside if not any(p != q and _within(p, q) for q in outside))


def check_sources(sources: Iterable[Path], denied: Iterable[Path], private: Iterable[Path]) -> None:
    """Refuse to mount a denied path or any of its ancestors, or anything inside `private`.

    Raises:
        SandboxSpecError: naming the offending source.
    """
    denied, private = list(denied), list(private)
    for src in sources:
        for d in denied:
            if _within(d, src):
                raise SandboxSpecError(f"refusing to mount {src} into a sandbox: it exposes {d}")
        for p in private:
            if _within(src, p):
                raise SandboxSpecError(f"refusing to mount {src} into a sandbox: it is in {p}")


def bwrap_isolation(*, privileged: bool, uid: int, gid: int) -> list[str]:
    """Namespaces, capabilities and the read-only system view (also what the probe runs)."""
    opts = [
        "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup",
        "--die-with-parent", "--new-session", "--hostname", "sandbox",
    ]  # fmt: skip
    if privileged:
        # Only what the chain needs until setpriv drops them all: entering the 0700 workspace
        # of another uid (--chdir), setgroups, setresuid and clearing the bounding set.
        keep = ("DAC_READ_SEARCH", "SETUID", "SETGID", "SETPCAP")
        opts += ["--cap-drop", "ALL", *(a for c in keep for a in ("--cap-add", f"CAP_{c}"))]
    else:
        opts += ["--unshare-user", "--disable-userns", "--uid", str(uid), "--gid", str(gid)]
        opts += ["--cap-drop", "ALL"]
    return [*opts, *system_mounts(), "--proc", "/proc", "--dev", "/dev"]


def bwrap_options(
    *,
    privileged: bool,
    uid: int,
    gid: int,
    workspace: Path,
    channel_socket: Path | None,
    ro_paths: Sequence[Path],
    env: dict[str, str],
    tmp_bytes: int,
) -> list[str]:
    """Every bwrap option (the command comes after them, on the command line)."""
    opts = bwrap_isolation(privileged=privileged, uid=uid, gid=gid)
    for tmp in ("/tmp", "/dev/shm"):  # noqa: S108 - the sandbox's own tmpfs, not the host's
        opts += ["--size", str(tmp_bytes), "--perms", "1777", "--tmpfs", tmp]
    binds = [("--ro-bind", p) for p in ro_paths] + [("--bind", workspace)]
    if channel_socket is not None:
        # The whole channel directory, read-only: next to the socket the trusted side puts what
        # the run may read but not change (skill bundles, the egress proxy's socket). Connecting
        # to a socket needs no write access to the mount it is on.
        binds.append(("--ro-bind", channel_socket.parent))
    # Directories leading to our mounts are made on the sandbox's own root (a tmpfs). Left to
    # bwrap they copy the host's modes, and a 0700 /root would block the sandbox uid.
    made = {Path("/"), Path("/tmp"), Path("/dev")}  # noqa: S108 - see above
    for _, path in sorted(binds, key=lambda b: b[1]):
        for parent in reversed(path.parents):
            if parent not in made and not any(_within(parent, p) for _, p in binds):
                opts += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
    for flag, path in sorted(binds, key=lambda b: b[1]):
        opts += [flag, str(path), str(path)]
    opts += ["--chdir", str(workspace), "--clearenv"]
    for key, value in env.items():
        opts += ["--setenv", key, value]
    return opts


def bwrap_exit_code(code: int) -> int:
    """bwrap exits 128+N when the command died of signal N; report that as -N like Popen."""
    return -(code - 128) if 128 < code <= 128 + 64 else code


def mounted(path: Path, ro_paths: Iterable[Path], workspace: Path) -> bool:
    """Whether `path` (resolved) is visible inside the sandbox."""
    real = path.resolve()
    roots = [Path(d) for d in SYSTEM_DIRS if Path(d).is_dir()] + [*ro_paths, workspace]
    return any(_within(real, r.resolve()) for r in roots)


def system_mounts() -> list[str]:
    """Read-only /usr and friends (symlinks where the host has merged /usr), and parts of /etc."""
    opts = []
    for d in SYSTEM_DIRS:
        if Path(d).is_symlink():
            opts += ["--symlink", str(Path(d).readlink()), d]
        elif Path(d).is_dir():
            opts += ["--ro-bind", d, d]
    for name in ETC_ENTRIES:
        if os.path.lexists(f"/etc/{name}"):
            opts += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return opts


def _within(path: Path, ancestor: Path) -> bool:
    return path == ancestor or ancestor in path.parents
