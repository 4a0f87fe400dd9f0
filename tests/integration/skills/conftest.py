"""Fixtures for skill runs: a runner of either sandbox flavor, and skill bundles uploaded
through the API the way a user uploads them."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import LiveServer, Tenant
from tests.integration.containers.conftest import runner_of_flavor
from tests.integration.runs.conftest import Runner

SCRIPT = b'#!/bin/bash\necho "hello from the skill: $(cat "$(dirname "$0")/../data/notes.txt")"\n'
NOTES = b"notes of the skill\n"


def skill_md(name: str) -> bytes:
    return (
        f"---\nname: {name}\ndescription: Greets with a script of its own\n---\n"
        f"# {name}\nRun scripts/hello.sh with bash from the skill's folder.\n"
    ).encode()


def bundle_zip(name: str) -> bytes:
    """SKILL.md + scripts/hello.sh (executable) + data/notes.txt, zipped in a top folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data, mode in (
            ("SKILL.md", skill_md(name), 0o644),
            ("scripts/hello.sh", SCRIPT, 0o755),
            ("data/notes.txt", NOTES, 0o644),
        ):
            info = zipfile.ZipInfo(f"{name}/{path}")
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def upload_bundle(tenant: Tenant, name: str) -> dict[str, Any]:
    r = tenant.client.post(
        tenant.path("/skills/upload"),
        files={"bundle": (f"{name}.zip", bundle_zip(name), "application/zip")},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture(params=["native", "container"])
def skill_runner(
    request: pytest.FixtureRequest, context: Any, worker_server: LiveServer
) -> Iterator[Runner]:
    """A runner whose agents use the native sandbox, or a Docker container of the real image."""
    yield from runner_of_flavor(request, context, worker_server, "skills")
