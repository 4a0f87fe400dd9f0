"""`actana sandbox build-image` and `actana sandbox image` as an operator runs them. Neither needs
a database or a master key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from actana.sandboxes.docker_image import runtime_fingerprint


def actana(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ACTANA_")}
    return subprocess.run(
        [sys.executable, "-m", "actana", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.docker
def test_build_image_reports_a_current_image(tmp_path, sandbox_image):
    result = actana("sandbox", "build-image", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{sandbox_image} is up to date" in result.stderr
    assert f"image:          {sandbox_image}" in result.stdout
    assert f"runtime:        {runtime_fingerprint()}" in result.stdout
    assert "size:" in result.stdout
    assert "seconds:" in result.stdout


@pytest.mark.docker
def test_image_shows_a_current_image_and_fails_on_a_missing_one(tmp_path, sandbox_image):
    result = actana("sandbox", "image", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "present:        yes" in result.stdout

    missing = actana("sandbox", "image", cwd=tmp_path, ACTANA_SANDBOX_IMAGE_TAG="no-such-tag")
    assert missing.returncode == 1
    assert "present:        no" in missing.stdout
    assert "missing: run `actana sandbox build-image`" in missing.stderr


def test_without_a_daemon_both_commands_fail_with_the_reason(tmp_path):
    nowhere = f"unix://{tmp_path}/no-docker.sock"
    for command in ("build-image", "image"):
        result = actana("sandbox", command, cwd=tmp_path, ACTANA_DOCKER_URL=nowhere)
        assert result.returncode == 1
        assert "no Docker daemon reachable" in result.stderr
        assert "Traceback" not in result.stderr


def test_build_image_if_docker_is_quiet_without_a_daemon(tmp_path):
    nowhere = f"unix://{tmp_path}/no-docker.sock"
    result = actana(
        "sandbox", "build-image", "--if-docker", cwd=tmp_path, ACTANA_DOCKER_URL=nowhere
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
