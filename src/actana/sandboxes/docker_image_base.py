"""Where the sandbox image's base comes from, with or without a container registry.

The configured base (`sandbox_base_image`) is used when the daemon has it or can pull it.
Otherwise a base is made from Debian's packages: debootstrapped into a folder and handed to the
daemon as a filesystem tarball (`docker import`), so only Debian's mirror has to be reachable.
That base, `actana-sandbox-base:<suite>`, holds python3 and tini, so the sandbox image itself then
builds with no network at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, NotFound
from docker.utils import parse_repository_tag
from requests.exceptions import RequestException

from actana.sandboxes.errors import ImageBuildError, SandboxUnavailableError
from actana.settings import Settings

BASE_NAME = "actana-sandbox-base"
BASE_LABEL = "org.actana.base"
PACKAGES = ("python3", "tini")
PULL_TIMEOUT_SEC = 60.0
# Nothing in a sandbox reads these (translations alone are ~33 MB); leaving them out keeps the
# base, and so each image, smaller. glibc does read locale.alias.
PRUNED = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/lib/apt/lists",
    "var/cache/apt",
)
KEPT = {"usr/share/locale/locale.alias"}

Log = Callable[[str], None]


def debian_base_ref(settings: Settings) -> str:
    return f"{BASE_NAME}:{settings.sandbox_debian_suite}"


def ensure_base(settings: Settings, api: docker.APIClient, log: Log) -> str:
    """A base image present in the daemon: the configured one, else the Debian-built one, else
    the configured one pulled, else a new Debian-built one. Returns its ref.

    Raises:
        ImageBuildError: the base could be neither pulled nor built.
    """
    configured = settings.sandbox_base_image
    fallback = debian_base_ref(settings)
    # The Debian-built base is tried before pulling: a registry that failed once rarely
    # answers later, and waiting on it at every rebuild would only add delay.
    for candidate in (configured, fallback):
        if _exists(api, candidate):
            log(f"base image: {candidate} (present)")
            return candidate
    if _pull(api, configured, log):
        return configured
    log(f"building the base {fallback} from Debian packages ({settings.sandbox_debian_mirror})")
    build_debian_base(settings, api, fallback, log)
    return fallback


def _exists(api: docker.APIClient, ref: str) -> bool:
    try:
        image_attrs(api, ref)
    except NotFound:
        return False
    except (DockerException, RequestException) as exc:
        raise SandboxUnavailableError(f"cannot inspect the image {ref}: {exc}") from exc
    return True


def _pull(api: docker.APIClient, ref: str, log: Log) -> bool:
    """Pull `ref`, giving up after PULL_TIMEOUT_SEC (the SDK sets no timeout on pulls)."""
    failure: list[str] = []

    def pull() -> None:
        repository, tag = parse_repository_tag(ref)
        try:
            api.pull(repository, tag=tag or "latest")
        except (DockerException, RequestException) as exc:
            failure.append(str(exc))

    log(f"pulling {ref}")
    # A daemon thread: a pull stuck on the network must not keep the CLI from exiting.
    worker = threading.Thread(target=pull, name="actana-pull", daemon=True)
    worker.start()
    worker.join(PULL_TIMEOUT_SEC)
    if worker.is_alive():
        log(f"pulling {ref} did not finish within {PULL_TIMEOUT_SEC:.0f} s; giving up")
        return False
    if failure:
        log(f"cannot pull {ref}: {failure[0]}")
        return False
    return True


def image_attrs(api: docker.APIClient, ref: str) -> dict[str, Any]:
    """`docker image inspect` of `ref`, as the daemon answers it (raises NotFound)."""
    # The stubs leave inspect_image untyped.
    attrs: dict[str, Any] = api.inspect_image(ref)  # type: ignore[no-untyped-call]
    return attrs


def probe_base(api: docker.APIClient, base: str) -> bool:
    """Whether `base` has python3 and tini on PATH (one throwaway container, no network)."""
    try:
        container = api.create_container(
            base,
            entrypoint=["/bin/sh", "-c"],
            command=["command -v python3 && command -v tini"],
            user="0",
            network_disabled=True,
            host_config=api.create_host_config(network_mode="none"),
        )
    except (DockerException, RequestException):
        return False
    try:
        api.start(container)
        return int(api.wait(container, timeout=60)["StatusCode"]) == 0
    except (DockerException, RequestException):
        return False
    finally:
        with contextlib.suppress(DockerException, RequestException):
            api.remove_container(container, force=True)


def build_debian_base(settings: Settings, api: docker.APIClient, ref: str, log: Log) -> None:
    """Debootstrap a minimal Debian with python3 and tini and import it into the daemon as `ref`.

    Raises:
        ImageBuildError: not root, no debootstrap to be had, the mirror failed, or the import did.
    """
    if os.geteuid() != 0:
        raise ImageBuildError(
            "no base image for the sandbox: the configured ACTANA_SANDBOX_BASE_IMAGE="
            f"{settings.sandbox_base_image} cannot be pulled, and building one from Debian's "
            "packages (debootstrap) needs root. Run `actana sandbox build-image` as root once, "
            "or load a base with python3 into the daemon (`docker load`) and name it in "
            "ACTANA_SANDBOX_BASE_IMAGE."
        )
    debootstrap = _debootstrap_binary(log)
    # /var/tmp, not /tmp: /tmp is often a small tmpfs or mounted noexec/nodev, and debootstrap
    # runs binaries and makes device nodes inside its target.
    target = Path(tempfile.mkdtemp(prefix="actana-debootstrap-", dir="/var/tmp"))
    try:
        _debootstrap(settings, debootstrap, target, log)
        _prune(target)
        _import(api, target, ref, settings.sandbox_debian_suite, log)
    finally:
        if _unmount_below(target):
            shutil.rmtree(target, ignore_errors=True)
        else:
            log(f"left {target} in place: something is still mounted inside it")


def _debootstrap_binary(log: Log) -> str:
    found = shutil.which("debootstrap")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise ImageBuildError(
            "building the sandbox base needs debootstrap, which is not installed and cannot be "
            "installed here (no apt-get); install it, or make ACTANA_SANDBOX_BASE_IMAGE available"
        )
    log("installing debootstrap from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "debootstrap"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ImageBuildError(f"cannot install debootstrap: {done.stderr.strip()[-2000:]}")
    return shutil.which("debootstrap") or "/usr/sbin/debootstrap"


def _debootstrap(settings: Settings, debootstrap: str, target: Path, log: Log) -> None:
    argv = [
        debootstrap,
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        settings.sandbox_debian_suite,
        str(target),
        settings.sandbox_debian_mirror,
    ]
    log(" ".join(argv))
    tail: list[str] = []
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail[-19:], line.rstrip()]
            log(line.rstrip())
        code = proc.wait()
    if code != 0:
        # debootstrap's own log names the package or URL that failed.
        details = (target / "debootstrap" / "debootstrap.log").read_text(errors="replace")[-2000:]
        raise ImageBuildError(
            f"debootstrap of Debian {settings.sandbox_debian_suite} from "
            f"{settings.sandbox_debian_mirror} failed (exit {code}):\n"
            + "\n".join(tail)
            + (f"\n{details}" if details.strip() else ""),
        )


def _prune(target: Path) -> None:
    for relative in PRUNED:
        for entry in (target / relative).glob("*"):
            if entry.relative_to(target).as_posix() in KEPT:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _import(api: docker.APIClient, target: Path, ref: str, suite: str, log: Log) -> None:
    log(f"importing the Debian root filesystem as {ref}")
    repository, tag = ref.rsplit(":", 1)
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f"LABEL {BASE_LABEL}=debootstrap:{suite}",
        'CMD ["python3"]',
    ]
    # Streamed straight from tar: no second copy of the filesystem on disk. tar's stderr goes to
    # a file, since a full pipe nobody reads while the import runs would stall tar.
    with (
        tempfile.TemporaryFile() as tar_errors,
        subprocess.Popen(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(target), "-c", "."],
            stdout=subprocess.PIPE,
            stderr=tar_errors,
        ) as tar,
    ):
        try:
            answer = api.import_image_from_stream(
                tar.stdout, repository=repository, tag=tag, changes=changes
            )
        except (DockerException, RequestException) as exc:
            tar.kill()
            raise ImageBuildError(f"docker import of the Debian base failed: {exc}") from exc
        if tar.wait() != 0:
            tar_errors.seek(0)
            message = tar_errors.read().decode(errors="replace").strip()[-2000:]
            raise ImageBuildError(f"tar of the Debian base failed: {message}")
    # The daemon answers 200 and reports a failed import inside the body.
    for line in str(answer).splitlines():
        if line.strip().startswith("{") and "error" in json.loads(line):
            raise ImageBuildError(f"docker import of the Debian base failed: {line.strip()}")


def _unmount_below(root: Path) -> bool:
    """Unmount whatever a failed debootstrap left mounted inside `root` (proc, sys, a bind of
    /dev). Returns whether nothing is mounted there any more: only then may the folder be
    removed, or the removal would reach into the host's /dev."""

    def mounted() -> list[str]:
        lines = Path("/proc/self/mounts").read_text().splitlines()
        points = [fields[1] for fields in (line.split() for line in lines)]
        return sorted((p for p in points if p.startswith(f"{root}/")), key=len, reverse=True)

    try:
        for mountpoint in mounted():
            subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)
        return not mounted()
    except OSError:
        return False
