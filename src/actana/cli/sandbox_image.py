"""`actana sandbox build-image` and `actana sandbox image`: the container flavor's image.

Neither needs the database or the master key: only settings and a Docker daemon.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from actana.cli.common import console, err_console, fail, load_settings
from actana.exceptions import ActanaError

if TYPE_CHECKING:
    import docker

    from actana.sandboxes.docker_image import ImageStatus
    from actana.settings import Settings


def _connect(settings: Settings) -> docker.DockerClient:
    # Imported here: the docker SDK costs ~0.2 s, which every other command need not pay.
    from actana.sandboxes.docker_image import connect_docker

    try:
        return connect_docker(settings)
    except ActanaError as exc:
        fail(exc.message, code=1)


def _print_status(status: ImageStatus) -> None:
    from actana.sandboxes.docker_image import runtime_fingerprint

    size = f"{status.size / 1e6:.0f} MB" if status.size is not None else "-"
    rows = [
        ("image", status.ref),
        ("present", "yes" if status.present else "no"),
        ("id", status.image_id or "-"),
        ("actana", status.version or "-"),
        ("runtime", status.fingerprint or "-"),
        ("server runtime", runtime_fingerprint()),
        ("packages", status.packages or "-"),
        ("size", size),
    ]
    for name, value in rows:
        console.print(f"{name + ':':<16}{value}", highlight=False, soft_wrap=True)


def build_image(
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even when the image is current.")
    ] = False,
    if_docker: Annotated[
        bool,
        typer.Option(
            "--if-docker",
            help="Do nothing (and succeed) when no Docker daemon is reachable.",
        ),
    ] = False,
    package: Annotated[
        list[str] | None,
        typer.Option(
            "--package",
            help="A Python package to install into the image besides "
            "ACTANA_SANDBOX_IMAGE_PACKAGES (a pip requirement, e.g. mcp-server-time); repeatable.",
        ),
    ] = None,
) -> None:
    """Build the sandbox image; a no-op when it is current.

    Name and tag: ACTANA_SANDBOX_IMAGE_NAME and ACTANA_SANDBOX_IMAGE_TAG. Python packages
    (installed with this host's pip, which needs the image's Python version):
    ACTANA_SANDBOX_IMAGE_PACKAGES plus each --package. When its base
    (ACTANA_SANDBOX_BASE_IMAGE) cannot be pulled, one is built from Debian's packages (as root).
    """
    from actana.sandboxes.docker_image import build_image as build
    from actana.sandboxes.docker_image import connect_docker

    settings = load_settings()
    if if_docker:
        try:
            client = connect_docker(settings)
        except ActanaError:
            return
    else:
        client = _connect(settings)

    def log(line: str) -> None:
        # Build output is plain text: `[...]` or `:x:` in it must print as itself.
        err_console.print(
            line, style="dim", markup=False, emoji=False, highlight=False, soft_wrap=True
        )

    started = time.monotonic()
    try:
        status = build(settings, client, force=force, log=log, packages=package or ())
    except ActanaError as exc:
        fail(exc.message, code=1)
    _print_status(status)
    console.print(
        f"{'seconds:':<16}{time.monotonic() - started:.1f}", highlight=False, soft_wrap=True
    )


def image() -> None:
    """Show the sandbox image and whether it carries this server's runtime (exit 1 if not)."""
    from actana.sandboxes.docker_image import image_ref, inspect_image

    settings = load_settings()
    client = _connect(settings)
    try:
        status = inspect_image(client, image_ref(settings))
    except ActanaError as exc:
        fail(exc.message, code=1)
    _print_status(status)
    if status.problem:
        fail(status.problem, code=1)
