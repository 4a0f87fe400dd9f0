"""The conformance battery against every sandbox backend we ship, run for real (no fakes).

Backends (as the server runs them: root, dropping privileges for the sandbox):

- native-bwrap: bwrap required (use_bwrap="always"); every run as uid 65534.
- native-nobwrap: plain processes (use_bwrap="never"); every run as uid 65534.
- native-nobwrap-uidpool: plain processes, one uid per live run from a pool.
- native-bwrap-uidpool: bwrap and a uid per run (the strongest native setup).
- docker: the container flavor (locked-down container per run, uid per run, no network).

Every known failure is an xfail(strict=True): if a backend starts passing a check, the test
fails until the entry is removed, so the lists below stay true.

As a non-root server (skipped here; measured once by running `run_battery` as uid 65534) the
sandbox runs as the server's own uid: bwrap fails only root_only_file_unreadable (a file of
the server's user inside the workspace is the sandbox's too); without bwrap it also fails
isolation_between_runs, no_network and rlimits_applied (RLIMIT_NPROC is left alone: it would
count the server's own processes).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from actana.sandboxes import get_backend
from actana.sandboxes.conformance import CHECKS, ConformanceContext, run_check
from actana.sandboxes.native_state import unreachable_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the battery's expectations are those of a root server, which drops privileges for "
    "its sandboxes; as non-root there is no uid drop (run as root, as CI does)",
)

RUN_UID = 65534
BACKENDS: dict[str, dict[str, Any]] = {
    "native-bwrap": {"use_bwrap": "always"},
    "native-nobwrap": {"use_bwrap": "never"},
    # Far from any account (NativeOptions refuses a pool that overlaps one).
    "native-nobwrap-uidpool": {"use_bwrap": "never", "uid_pool": (1_700_000, 1_700_256)},
    "native-bwrap-uidpool": {"use_bwrap": "always", "uid_pool": (1_700_000, 1_700_256)},
    # The container flavor: the image `actana sandbox build-image` makes (or
    # ACTANA_TEST_SANDBOX_IMAGE), on the local daemon.
    "docker": {},
}

NO_NETNS = "without bwrap there is no network namespace: the host's loopback is reachable"
KNOWN_FAILURES: dict[str, dict[str, str]] = {
    "native-bwrap": {},
    "native-nobwrap": {
        "no_network": NO_NETNS,
        # All runs are uid 65534: a 0700 workspace keeps other users out, not another run as
        # the same uid, and /proc/<pid>/environ (the OTP tokens) of a same-uid process is
        # readable. This is what uid_pool (next backend) fixes.
        "isolation_between_runs": "runs share uid 65534 and see each other without bwrap",
    },
    "native-nobwrap-uidpool": {"no_network": NO_NETNS},
    "native-bwrap-uidpool": {},
    "docker": {},
}


def _params() -> list[Any]:
    params = []
    for backend in BACKENDS:
        for name in CHECKS:
            reason = KNOWN_FAILURES[backend].get(name)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(backend, name, id=f"{backend}-{name}", marks=marks))
    return params


@pytest.fixture(scope="module")
def sandbox_root() -> Iterator[Path]:
    """A root for sandbox state that the sandbox uid can traverse (tmp_path, under a 0700
    /tmp/pytest-of-root, is not), plus a 0755 scratch dir for sockets and probe files."""
    root = Path(tempfile.mkdtemp(prefix="actana-conformance-", dir="/tmp"))
    root.chmod(0o711)
    (root / "scratch").mkdir(mode=0o755)
    (root / "scratch").chmod(0o755)
    yield root
    shutil.rmtree(root)


def _python_for_plain_processes() -> str:
    """The real interpreter when the sandbox uid can run it; else the system one.

    Without bwrap nothing is mounted for the sandbox: it runs the interpreter through the host's
    own paths, and a pyenv under /root (0700, as on the dev box) is out of reach of uid 65534.
    The backend refuses such a command with SandboxSpecError, so we pick one it can run.
    """
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        path = Path(candidate)
        if path.exists() and unreachable_for(path, RUN_UID, RUN_UID, os.X_OK) is None:
            return candidate
    pytest.skip("no Python interpreter that uid 65534 can execute")


def _docker_context(
    request: pytest.FixtureRequest, root: Path, scratch: Path
) -> ConformanceContext:
    image = os.environ.get("ACTANA_TEST_SANDBOX_IMAGE") or request.getfixturevalue("sandbox_image")

    def make_backend() -> Any:
        return get_backend("docker", root_dir=root, image=image)

    described = make_backend().describe()
    assert described["available"], f"docker sandbox unavailable: {described['reason']}"
    return ConformanceContext(make_backend=make_backend, python="python3", scratch=scratch)


@pytest.fixture(scope="module")
def contexts(
    sandbox_root: Path, request: pytest.FixtureRequest
) -> Callable[[str], ConformanceContext]:
    """One context (hence one probed backend) per backend for the whole module."""
    made: dict[str, ConformanceContext] = {}

    def get(name: str) -> ConformanceContext:
        if name == "docker" and name not in made:
            made[name] = _docker_context(request, sandbox_root / name, sandbox_root / "scratch")
        if name not in made:
            options = BACKENDS[name]

            def make_backend() -> Any:
                return get_backend("native", root_dir=sandbox_root / name, **options)

            described = make_backend().describe()
            if not described["available"]:
                pytest.skip(f"{name}: {described['reason']}")
            bwrap = options["use_bwrap"] != "never"
            made[name] = ConformanceContext(
                make_backend=make_backend,
                python=sys.executable if bwrap else _python_for_plain_processes(),
                scratch=sandbox_root / "scratch",
            )
        return made[name]

    return get


@pytest.mark.parametrize(("backend", "check"), _params())
def test_conformance(
    backend: str, check: str, contexts: Callable[[str], ConformanceContext]
) -> None:
    anyio.run(run_check, check, contexts(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_battery_leaves_nothing_behind(
    backend: str, contexts: Callable[[str], ConformanceContext]
) -> None:
    ctx = contexts(backend)
    leftovers = anyio.run(ctx.make_backend().list_own)
    assert leftovers == []
