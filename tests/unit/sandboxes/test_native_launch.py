"""The native backend's exec chain and bubblewrap arguments, as pure functions."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from actana.sandboxes import SandboxLimits, SandboxSpecError
from actana.sandboxes import native_launch as launch

WS = Path("/srv/actana/sandboxes/run-1/workspace")
SOCK = Path("/run/actana/run-1.sock")
PYENV = Path("/root/.pyenv/versions/3.11.7")


def options(privileged: bool = True, **overrides: object) -> list[str]:
    kwargs: dict[str, object] = {
        "privileged": privileged,
        "uid": 65534,
        "gid": 65534,
        "workspace": WS,
        "channel_socket": SOCK,
        "ro_paths": [PYENV, Path("/opt/app/src")],
        "env": {"OTP_RUN": "secret", "PATH": "/usr/bin"},
        "tmp_bytes": 1 << 20,
    }
    kwargs.update(overrides)
    return launch.bwrap_options(**kwargs)  # type: ignore[arg-type]


def pairs(opts: list[str], flag: str, arity: int = 2) -> list[tuple[str, ...]]:
    return [tuple(opts[i + 1 : i + 1 + arity]) for i, o in enumerate(opts) if o == flag]


def test_rlimits_soft_equals_hard_and_never_above_ours() -> None:
    limits = SandboxLimits(cpu_seconds=7, memory_bytes=1 << 29, open_files=10**9)
    argv = launch.rlimit_argv("/usr/bin/prlimit", limits, nproc=True)
    assert argv[0] == "/usr/bin/prlimit"
    assert argv[-1] == "--"
    assert "--cpu=7" in argv
    assert f"--as={1 << 29}" in argv
    assert "--core=0" in argv
    hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert f"--nofile={min(10**9, hard_nofile)}" in argv
    assert not any(a.startswith("--nproc") for a in launch.rlimit_argv("p", limits, nproc=False))


def test_setpriv_drops_everything() -> None:
    argv = launch.setpriv_argv("/usr/bin/setpriv", 1234, 5678)
    for flag in ("--reuid=1234", "--regid=5678", "--clear-groups", "--no-new-privs"):
        assert flag in argv
    for caps in ("--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"):
        assert caps in argv


def test_bwrap_privileged_has_namespaces_and_only_the_caps_setpriv_needs() -> None:
    opts = options(privileged=True)
    for flag in ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"):
        assert flag in opts
    assert "--die-with-parent" in opts
    assert "--new-session" in opts
    assert "--unshare-user" not in opts  # see native_launch: uid 65534 must be a real host uid
    added = [c for (c,) in pairs(opts, "--cap-add", 1)]
    assert opts[opts.index("--cap-drop") + 1] == "ALL"
    assert sorted(added) == ["CAP_DAC_READ_SEARCH", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID"]


def test_bwrap_unprivileged_uses_a_user_namespace_without_nesting() -> None:
    opts = options(privileged=False)
    assert "--unshare-user" in opts
    assert "--disable-userns" in opts
    assert ("65534",) in pairs(opts, "--uid", 1)
    assert "--cap-add" not in opts


def test_bwrap_mounts() -> None:
    opts = options()
    assert (str(WS), str(WS)) in pairs(opts, "--bind")
    # The channel's whole directory, read-only (skills and the egress socket live next to it).
    assert (str(SOCK.parent), str(SOCK.parent)) in pairs(opts, "--ro-bind")
    assert str(SOCK) not in [src for src, _ in pairs(opts, "--bind")]
    assert (str(PYENV), str(PYENV)) in pairs(opts, "--ro-bind")
    assert ("/usr", "/usr") in pairs(opts, "--ro-bind")
    binds = [
        src for flag in ("--bind", "--ro-bind", "--ro-bind-try") for src, _ in pairs(opts, flag)
    ]
    for forbidden in ("/", "/root", "/home", "/etc", "/var", "/run", "/srv/actana"):
        assert forbidden not in binds
    assert ("/tmp",) in pairs(opts, "--tmpfs", 1)
    assert opts[opts.index("--chdir") + 1] == str(WS)


def test_bwrap_makes_traversable_parents_before_mounting() -> None:
    opts = options()
    made = [d for (d,) in pairs(opts, "--dir", 1)]
    # /root exists inside only as a 0755 directory on the sandbox's tmpfs, never the host's.
    assert {"/root", "/root/.pyenv", "/srv/actana/sandboxes/run-1", "/run"} <= set(made)
    for d in made:
        i = opts.index(d)
        assert opts[i - 1] == "--dir"
        assert opts[i - 3 : i - 1] == ["--perms", "0755"]
        assert i < opts.index(str(PYENV))  # before any bind
    assert "/tmp" not in made
    assert "/" not in made


def test_environment_is_cleared_then_set() -> None:
    opts = options()
    assert opts.index("--clearenv") < opts.index("--setenv")
    assert ("OTP_RUN", "secret") in pairs(opts, "--setenv")


@pytest.mark.parametrize("source", ["/", "/root", "/home", "/var", "/var/lib", "/run"])
def test_check_sources_refuses_denied_paths_and_their_ancestors(source: str) -> None:
    denied = [Path(p) for p in launch.DENIED_PATHS]
    with pytest.raises(SandboxSpecError, match="refusing"):
        launch.check_sources([Path(source)], denied, [])


def test_check_sources_allows_below_denied_but_not_inside_private() -> None:
    denied = [Path(p) for p in launch.DENIED_PATHS]
    launch.check_sources([PYENV, Path("/home/u/src")], denied, [])  # below /root, /home: fine
    with pytest.raises(SandboxSpecError, match="in /data"):
        launch.check_sources([Path("/data/keys")], denied, [Path("/data")])


@pytest.mark.parametrize(("raw", "reported"), [(0, 0), (1, 1), (128, 128), (137, -9), (143, -15)])
def test_bwrap_exit_codes(raw: int, reported: int) -> None:
    assert launch.bwrap_exit_code(raw) == reported


def test_app_paths_cover_the_interpreter_and_the_package() -> None:
    import sys

    import actana

    paths = launch.app_paths()
    package_root = Path(actana.__file__).resolve().parent.parent
    assert any(package_root == p or p in package_root.parents for p in paths) or any(
        package_root.is_relative_to(d) for d in launch.SYSTEM_DIRS
    )
    assert launch.mounted(Path(sys.executable), paths, WS)
    assert not any(p != q and p.is_relative_to(q) for p in paths for q in paths)
