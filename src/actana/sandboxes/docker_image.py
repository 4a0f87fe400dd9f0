"""The image of the `container` flavor: which runtime it carries, and building it.

The image holds Python, tini and the in-sandbox runtime (`actana.runtime`, `actana.protocol`)
copied from this installation, plus two labels: the actana version and a fingerprint of the
runtime's sources. The server compares that fingerprint with its own before it provisions a
container, so a server upgraded without a rebuilt image fails with an actionable message instead
of starting a runtime that speaks another protocol.

    client = connect_docker(settings)
    status = build_image(settings, client, log=print)  # a no-op when the image is current

Only `actana.settings` and `actana.sandboxes.errors` are imported from the server: the CLI and
the docker backend both use this module.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import re
import shutil
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import DockerException, NotFound
from requests.exceptions import RequestException

import actana
from actana.sandboxes.docker_image_base import ensure_base, image_attrs, probe_base
from actana.sandboxes.docker_image_packages import (
    PACKAGES_LABEL,
    SCRIPTS_DIR,
    SITE_DIR,
    carried_packages,
    check_same_python,
    image_python,
    install_packages,
    packages_label,
    wanted_packages,
)
from actana.sandboxes.errors import ImageBuildError, SandboxUnavailableError
from actana.settings import Settings

RUNTIME_LABEL = "org.actana.runtime"
VERSION_LABEL = "org.actana.version"
BUILD_COMMAND = "actana sandbox build-image"
DOCKERFILE = Path(__file__).with_name("image") / "sandbox.Dockerfile"

# What the sandbox needs of actana: these packages and `actana/__init__.py`, nothing else.
RUNTIME_PACKAGES = ("protocol", "runtime")
# A silent build step (apt-get on a slow mirror, byte-compiling the stdlib) must not look dead.
BUILD_TIMEOUT_SEC = 1800

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
NON_ZERO_EXIT = re.compile(r"returned a non-zero code: (\d+)")

Log = Callable[[str], None]
AnyClient = docker.DockerClient | docker.APIClient


def _ignore(_line: str) -> None:
    pass


def runtime_sources(root: Path) -> list[tuple[str, Path]]:
    """Every .py file the sandbox runtime needs below `root` (the folder holding `actana/`),
    as sorted (relative posix path, file) pairs."""
    package = root / "actana"
    files = [package / "__init__.py"]
    for name in RUNTIME_PACKAGES:
        files += (p for p in (package / name).rglob("*.py") if "__pycache__" not in p.parts)
    return sorted((path.relative_to(root).as_posix(), path) for path in files)


def installed_root() -> Path:
    """The folder this installation's `actana` package lives in (site-packages, or src/)."""
    return Path(actana.__file__).resolve().parent.parent


def fingerprint_tree(root: Path) -> str:
    """sha256 over the runtime's relative paths and contents below `root`."""
    digest = hashlib.sha256()
    for relative, path in runtime_sources(root):
        data = path.read_bytes()
        # Path and length framing, so that moving bytes between files changes the digest.
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


@functools.cache
def runtime_fingerprint() -> str:
    """The fingerprint of the runtime this server would put into an image (computed once)."""
    return fingerprint_tree(installed_root())


def image_ref(settings: Settings) -> str:
    return f"{settings.sandbox_image_name}:{settings.sandbox_image_tag}"


def short(fingerprint: str | None) -> str:
    return fingerprint[:12] if fingerprint else "(none)"


@dataclass(frozen=True)
class ImageStatus:
    """What the daemon holds under the image ref, compared with this server's runtime."""

    ref: str
    present: bool
    image_id: str | None = None
    version: str | None = None
    """The actana version the image was built from (its label)."""
    fingerprint: str | None = None
    """The runtime fingerprint the image carries (its label)."""
    matches: bool = False
    """The image carries exactly this server's runtime."""
    problem: str | None = None
    """Why the image cannot be used, and what to run; None when it can."""
    size: int | None = None
    """Bytes, as the daemon reports them."""
    packages: str | None = None
    """The Python packages the image carries (its label: a sorted JSON list)."""


def _api(client: AnyClient) -> docker.APIClient:
    # The backend holds a low-level APIClient, the CLI a DockerClient: accept both.
    return client.api if isinstance(client, docker.DockerClient) else client


def connect_docker(settings: Settings, *, timeout: float = 60) -> docker.DockerClient:
    """A client of the daemon at `settings.docker_url` (else DOCKER_HOST or the default socket).

    Raises:
        SandboxUnavailableError: no daemon answers there.
    """
    where = settings.docker_url or "DOCKER_HOST or the default socket"
    failure = None
    with warnings.catch_warnings():
        # The SDK leaks the socket of a failed connect; its ResourceWarning is noise here, so
        # the failure is dropped (and collected) before the warnings filter is restored.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            if settings.docker_url:
                client = docker.DockerClient(
                    base_url=settings.docker_url, version="auto", timeout=int(timeout)
                )
            else:
                client = docker.from_env(version="auto", timeout=int(timeout))
            client.ping()
        except (DockerException, RequestException) as exc:
            failure = str(exc)
        if failure is not None:
            gc.collect()
    if failure is not None:
        raise SandboxUnavailableError(
            f"no Docker daemon reachable at {where} ({failure}); start one (as root: "
            "scripts/ensure-docker.sh) or point ACTANA_DOCKER_URL at it",
            docker_url=settings.docker_url,
        )
    return client


def inspect_image(
    client: AnyClient,
    ref: str,
    packages: Sequence[str] | None = None,
    *,
    at_least: Sequence[str] = (),
) -> ImageStatus:
    """Whether `ref` exists and carries this server's runtime (and, when `packages` is given,
    exactly those Python packages; every one of `at_least` in any case).

    Raises:
        SandboxUnavailableError: the daemon did not answer.
    """
    try:
        attrs = image_attrs(_api(client), ref)
    except NotFound:
        return ImageStatus(
            ref, present=False, problem=f"the sandbox image {ref} is missing: run `{BUILD_COMMAND}`"
        )
    except (DockerException, RequestException) as exc:
        raise SandboxUnavailableError(f"cannot inspect the sandbox image {ref}: {exc}") from exc
    labels: dict[str, str] = (attrs.get("Config") or {}).get("Labels") or {}
    version, fingerprint = labels.get(VERSION_LABEL), labels.get(RUNTIME_LABEL)
    ours = runtime_fingerprint()
    problem = None
    if fingerprint is None:
        problem = (
            f"image {ref} carries no actana runtime label, so it was not built by "
            f"`{BUILD_COMMAND}`: rebuild with `{BUILD_COMMAND}`"
        )
    elif fingerprint != ours:
        problem = (
            f"image {ref} carries runtime {short(fingerprint)} of actana {version or '?'}, "
            f"this server has {short(ours)} of {actana.__version__}: "
            f"rebuild with `{BUILD_COMMAND}`"
        )
    carried = labels.get(PACKAGES_LABEL)
    if problem is None and packages is not None and carried != packages_label(packages):
        problem = (
            f"image {ref} carries the Python packages {carried or '(none recorded)'}, "
            f"wanted {packages_label(packages)}: rebuild with `{BUILD_COMMAND}`"
        )
    have = set(carried_packages(carried))
    missing = [name for name in at_least if name not in have]
    if problem is None and missing:
        problem = (
            f"image {ref} lacks the Python packages {packages_label(missing)} that "
            f"ACTANA_SANDBOX_IMAGE_PACKAGES asks for (it carries {carried or 'none recorded'}): "
            f"rebuild with `{BUILD_COMMAND}`"
        )
    return ImageStatus(
        ref,
        present=True,
        image_id=attrs.get("Id"),
        version=version,
        fingerprint=fingerprint,
        matches=problem is None,
        problem=problem,
        size=attrs.get("Size"),
        packages=carried,
    )


def assemble_context(directory: Path, root: Path | None = None) -> Path:
    """Fill `directory` with the build context: the Dockerfile and `runtime/actana/...` (the
    runtime's .py files only, never server code or stale bytecode), and the (empty) folders the
    packages go in (see `docker_image_packages.install_packages`). Returns `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for folder in (SITE_DIR, SCRIPTS_DIR):
        (directory / folder).mkdir(exist_ok=True)
    shutil.copyfile(DOCKERFILE, directory / "Dockerfile")
    for relative, path in runtime_sources(root or installed_root()):
        target = directory / "runtime" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return directory


def build_image(
    settings: Settings,
    client: AnyClient,
    *,
    force: bool = False,
    log: Log = _ignore,
    packages: Sequence[str] = (),
) -> ImageStatus:
    """Make `image_ref(settings)` carry this server's runtime and Python packages (the
    configured `sandbox_image_packages` plus `packages`); a no-op when it already does.

    Raises:
        ImageBuildError: no base could be had, a package specifier is bad, the base's Python
            differs from this host's, pip failed, or the build failed (the message says where).
        SandboxUnavailableError: the daemon did not answer.
    """
    api = _api(client)
    ref = image_ref(settings)
    wanted = wanted_packages(settings.sandbox_image_packages, packages)
    before = inspect_image(api, ref, wanted)
    if before.matches and not force:
        log(f"{ref} is up to date (runtime {short(before.fingerprint)})")
        return before
    base = ensure_base(settings, api, log)
    # A base that has python3 and tini needs nothing from outside: build it offline.
    network = "none" if probe_base(api, base) else None
    log(f"building {ref} from {base} (network: {network or 'default'})")
    interpreter = ""
    if wanted:
        version, interpreter = image_python(api, base)
        check_same_python(version, base)
    with tempfile.TemporaryDirectory(prefix="actana-image-") as directory:
        context = assemble_context(Path(directory))
        install_packages(context, wanted, interpreter, log)
        _run_build(api, context, ref, base, network, force, packages_label(wanted), log)
    after = inspect_image(api, ref, wanted)
    if not after.matches:
        raise ImageBuildError(f"built {ref}, but it does not check out: {after.problem}")
    if before.image_id and before.image_id != after.image_id:
        _remove_replaced(api, before.image_id, log)
    return after


def _run_build(
    api: docker.APIClient,
    context: Path,
    ref: str,
    base: str,
    network: str | None,
    force: bool,
    packages: str,
    log: Log,
) -> None:
    try:
        stream = api.build(
            path=str(context),
            tag=ref,
            buildargs={
                "BASE_IMAGE": base,
                "ACTANA_VERSION": actana.__version__,
                "ACTANA_RUNTIME": runtime_fingerprint(),
                "ACTANA_PACKAGES": packages,
            },
            rm=True,
            forcerm=True,
            nocache=force,
            pull=False,
            network_mode=network,
            decode=True,
            timeout=BUILD_TIMEOUT_SEC,
        )
        step, output = "", deque[str](maxlen=15)
        for chunk in stream:
            if "error" in chunk:
                raise ImageBuildError(_build_failure(ref, str(chunk["error"]), step, output))
            for line in ANSI_ESCAPE.sub("", str(chunk.get("stream", ""))).splitlines():
                if not line.strip():
                    continue
                log(line.rstrip())
                if line.startswith("Step "):
                    step = line
                    output.clear()
                elif not line.startswith((" ---> ", "Removing intermediate container")):
                    output.append(line.rstrip())
    except (DockerException, RequestException) as exc:
        raise ImageBuildError(f"building {ref} failed: {exc}") from exc


def _build_failure(ref: str, error: str, step: str, output: deque[str]) -> str:
    # The daemon's error repeats the whole RUN command; the step's number and its last output
    # lines say more in less space.
    failed = NON_ZERO_EXIT.search(error)
    reason = f"{step[:120]} exited with {failed.group(1)}" if failed and step else error.strip()
    tail = "\n".join(output)
    return f"building {ref} failed: {reason}" + (f"\n{tail}" if tail else "")


def _remove_replaced(api: docker.APIClient, image_id: str, log: Log) -> None:
    # The previous build lost its tag: drop it, unless another tag still names it (removing by
    # id would untag those too) or a container still uses it (the daemon refuses).
    try:
        if image_attrs(api, image_id).get("RepoTags"):
            return
        api.remove_image(image_id)
        log(f"removed the replaced image {image_id[:19]}")
    except (DockerException, RequestException):
        log(f"kept the replaced image {image_id[:19]} (still in use)")
