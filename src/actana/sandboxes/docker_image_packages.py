"""Python packages in the sandbox image (the mcp SDK for stdio MCP servers, and what else the
operator asks for), installed at build time with this host's pip.

The image is built with no network (its base already has python3 and tini), so the packages are
installed here, with `pip install --target` into the build context, and copied in. That only
works when the host's Python and the image's have the same minor version (compiled wheels and
`.pyc` files are per version): the image's Python is asked first, and a mismatch is refused with
a message saying what to do. Console scripts get their shebang pointed at the image's own
interpreter. The list goes into a label, so that a change to it rebuilds the image.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import docker
from docker.errors import DockerException
from requests.exceptions import RequestException

from actana.sandboxes.errors import ImageBuildError

PACKAGES_LABEL = "org.actana.packages"
SITE_DIR = "site"  # in the build context: the packages, copied to /opt/actana-site
SCRIPTS_DIR = "scripts"  # in the build context: their console scripts, copied to /usr/local/bin
PIP_TIMEOUT_SEC = 900
# A requirement specifier as pip takes it on the command line: never an option (`-r file`,
# `--index-url ...`), never whitespace that would split it.
_SPECIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~*;:@/+ '\"()]*$")
# Names the sandbox gives its own commands: the mcp SDK's own `mcp` CLI (which needs packages
# the image lacks anyway) must not shadow the runtime's `mcp` shim.
RESERVED_SCRIPTS = frozenset({"mcp"})
_PYTHON_SHEBANG = re.compile(rb"^#!.*python[0-9.]*\b.*$", re.MULTILINE)

Log = Callable[[str], None]


def wanted_packages(configured: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """The packages to install: the configured ones then `extra`, stripped, without repeats.

    Raises:
        ImageBuildError: a specifier is empty, an option, or holds a line break.
    """
    packages: list[str] = []
    for raw in [*configured, *extra]:
        package = raw.strip()
        if not package or package.startswith("-") or not _SPECIFIER.match(package):
            raise ImageBuildError(
                f"{raw!r} is not a package requirement (e.g. 'mcp>=1.25,<2' or "
                "'mcp-server-time'); fix ACTANA_SANDBOX_IMAGE_PACKAGES or --package"
            )
        if package not in packages:
            packages.append(package)
    return packages


def packages_label(packages: Sequence[str]) -> str:
    """The label value naming the packages (order-independent, so reordering rebuilds nothing)."""
    return json.dumps(sorted(packages), separators=(",", ":"))


def carried_packages(label: str | None) -> list[str]:
    """The packages a `packages_label` value names; [] for no label or one not ours."""
    try:
        value = json.loads(label or "[]")
    except ValueError:
        return []
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def image_python(api: docker.APIClient, base: str) -> tuple[str, str]:
    """The base's Python: ("3.11", "/usr/bin/python3"), from one throwaway container.

    Raises:
        ImageBuildError: the base's python3 cannot be run.
    """
    code = "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"
    container = None
    try:
        container = api.create_container(
            base,
            entrypoint=["python3", "-I", "-c", code],
            user="0",
            network_disabled=True,
            host_config=api.create_host_config(network_mode="none"),
        )
        api.start(container)
        status = int(api.wait(container, timeout=60)["StatusCode"])
        output = api.logs(container, stdout=True, stderr=True).decode(errors="replace")
    except (DockerException, RequestException) as exc:
        raise ImageBuildError(f"cannot ask the base image {base} for its Python: {exc}") from exc
    finally:
        if container is not None:
            with contextlib.suppress(DockerException, RequestException):
                api.remove_container(container, force=True)
    lines = output.split()
    if status != 0 or len(lines) != 2:
        raise ImageBuildError(f"the base image {base} has no usable python3: {output[-500:]}")
    return lines[0], lines[1]


def check_same_python(image_version: str, base: str) -> None:
    """Refuse to install with a host pip whose Python differs from the image's.

    Raises:
        ImageBuildError: the minor versions differ.
    """
    host = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if image_version != host:
        raise ImageBuildError(
            f"the sandbox image's Python ({base}) is {image_version}, this host's is {host}: "
            "packages installed with this host's pip would not load there. Run actana with "
            f"Python {image_version}, use a base image with Python {host} "
            "(ACTANA_SANDBOX_BASE_IMAGE), or set ACTANA_SANDBOX_IMAGE_PACKAGES='[]'"
        )


def install_packages(context: Path, packages: Sequence[str], interpreter: str, log: Log) -> None:
    """`pip install --target <context>/site` the packages; move their console scripts to
    `<context>/scripts` with the image's `interpreter` in the shebang. Both folders always exist
    (empty without packages), as the Dockerfile copies them.

    Raises:
        ImageBuildError: pip failed or took too long (the message ends with its output).
    """
    site, scripts = context / SITE_DIR, context / SCRIPTS_DIR
    site.mkdir(parents=True, exist_ok=True)
    scripts.mkdir(parents=True, exist_ok=True)
    if not packages:
        return
    argv = [
        sys.executable, "-m", "pip", "install", "--target", str(site), "--no-compile",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off", *packages,
    ]  # fmt: skip
    log(f"installing into the image: {' '.join(packages)}")
    env = {**os.environ, "PIP_NO_WARN_SCRIPT_LOCATION": "1"}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=PIP_TIMEOUT_SEC,
            env=env, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ImageBuildError(
            f"pip install of {list(packages)} took over {PIP_TIMEOUT_SEC} s"
        ) from None
    for line in done.stdout.splitlines():
        log(line)
    if done.returncode != 0:
        raise ImageBuildError(
            f"pip install of {list(packages)} for the sandbox image failed "
            f"(exit {done.returncode}):\n{done.stderr.strip()[-2000:]}"
        )
    _move_scripts(site / "bin", scripts, interpreter)


def _move_scripts(source: Path, target: Path, interpreter: str) -> None:
    """Console scripts, their `#!host-python` replaced by `#!interpreter`."""
    if not source.is_dir():
        return
    for script in sorted(source.iterdir()):
        if not script.is_file() or script.is_symlink():
            continue
        if script.name in RESERVED_SCRIPTS:
            script.unlink()
            continue
        data = script.read_bytes()
        first, newline, rest = data.partition(b"\n")
        if _PYTHON_SHEBANG.fullmatch(first):
            data = f"#!{interpreter}".encode() + newline + rest
        (target / script.name).write_bytes(data)
        (target / script.name).chmod(0o755)
        script.unlink()
    with contextlib.suppress(OSError):
        source.rmdir()
