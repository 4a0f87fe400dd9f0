"""The sandbox image on the real daemon: current, non-root, no setuid file, no server code, and
importable on a read-only root filesystem without writing bytecode."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

import docker
import pytest

import actana
from actana.sandboxes.docker_image import (
    RUNTIME_LABEL,
    VERSION_LABEL,
    build_image,
    image_ref,
    inspect_image,
    installed_root,
    runtime_fingerprint,
    runtime_sources,
)
from actana.settings import Settings

pytestmark = pytest.mark.docker

SANDBOX_UID = 10001


def run(
    client: docker.DockerClient, image: str, *argv: str, user: str | None = None
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `argv` in a throwaway container locked down like a run's:
    no network, read-only root filesystem, no capabilities, no new privileges."""
    api = client.api
    container = api.create_container(
        image,
        command=list(argv),
        user=user,
        network_disabled=True,
        host_config=api.create_host_config(
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
        ),
    )
    try:
        api.start(container)
        code = int(api.wait(container, timeout=120)["StatusCode"])
        out = api.logs(container, stdout=True, stderr=False).decode()
        err = api.logs(container, stdout=False, stderr=True).decode()
    finally:
        api.remove_container(container, force=True)
    return code, out, err


def attrs(client: docker.DockerClient, image: str) -> dict[str, Any]:
    result: dict[str, Any] = client.images.get(image).attrs
    return result


def test_building_a_current_image_is_a_fast_no_op(docker_client, sandbox_image):
    lines: list[str] = []
    started = time.monotonic()
    status = build_image(Settings(_env_file=None), docker_client, log=lines.append)
    assert time.monotonic() - started < 5
    assert status.ref == sandbox_image
    assert status.matches
    assert status.problem is None
    assert lines == [f"{sandbox_image} is up to date (runtime {runtime_fingerprint()[:12]})"]


def test_a_forced_rebuild_leaves_images_of_other_tags_alone(docker_client, sandbox_image):
    # The same image under a second tag (tagged, not built: whether a second build reuses the
    # cached layers is up to the daemon); the forced rebuild then moves this tag, and the old
    # image must survive under the other one.
    settings = Settings(_env_file=None, sandbox_image_tag=f"test-{secrets.token_hex(4)}")
    original = attrs(docker_client, sandbox_image)["Id"]
    repository, tag = image_ref(settings).rsplit(":", 1)
    docker_client.api.tag(sandbox_image, repository, tag)
    try:
        first = build_image(settings, docker_client)
        assert first.image_id == original  # current already: nothing built
        rebuilt = build_image(settings, docker_client, force=True)
        assert rebuilt.matches
        assert rebuilt.image_id != original
        assert attrs(docker_client, sandbox_image)["Id"] == original
    finally:
        docker_client.api.remove_image(image_ref(settings))


def test_the_labels_name_this_runtime(docker_client, sandbox_image):
    labels = attrs(docker_client, sandbox_image)["Config"]["Labels"]
    assert labels[RUNTIME_LABEL] == runtime_fingerprint()
    assert labels[VERSION_LABEL] == actana.__version__
    assert inspect_image(docker_client.api, sandbox_image).matches


def test_the_runtime_in_the_image_is_the_servers_byte_for_byte(docker_client, sandbox_image):
    script = (
        "import hashlib, json, pathlib\n"
        "root = pathlib.Path('/opt/actana')\n"
        "print(json.dumps({p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes())"
        ".hexdigest() for p in root.rglob('*.py')}))"
    )
    code, out, err = run(docker_client, sandbox_image, "python3", "-I", "-c", script)
    assert code == 0, err
    ours = {
        relative: hashlib.sha256(path.read_bytes()).hexdigest()
        for relative, path in runtime_sources(installed_root())
    }
    assert json.loads(out) == ours


def test_the_default_user_is_not_root(docker_client, sandbox_image):
    config = attrs(docker_client, sandbox_image)["Config"]
    assert config["User"] == f"{SANDBOX_UID}:{SANDBOX_UID}"
    assert config["Entrypoint"] == ["tini", "--"]
    assert config["Cmd"] == ["python3", "-I", "-m", "actana.runtime.launch"]
    script = (
        "import os, pathlib\n"
        "print(os.getuid(), os.getgid(), os.getcwd())\n"
        "print(*(os.stat(d).st_uid for d in ('/workspace', '/run/actana')))\n"
        "print(pathlib.Path('/proc/1/cmdline').read_bytes().split(b'\\0')[0].decode())"
    )
    code, out, err = run(docker_client, sandbox_image, "python3", "-I", "-c", script)
    assert code == 0, err
    ids, owners, init = out.splitlines()
    assert ids == f"{SANDBOX_UID} {SANDBOX_UID} /workspace"
    assert owners == f"{SANDBOX_UID} {SANDBOX_UID}"
    assert Path(init).name == "tini"  # PID 1 reaps the runtime's children


def test_the_runtime_imports_on_a_read_only_root(docker_client, sandbox_image):
    code, out, err = run(
        docker_client,
        sandbox_image,
        "python3",
        "-I",
        "-c",
        "import actana.runtime.main, sys; print(sys.modules['actana'].__file__)",
    )
    assert code == 0, err
    assert out.strip() == "/opt/actana/actana/__init__.py"


def test_nothing_is_compiled_at_start_up(docker_client, sandbox_image):
    # `-v` says where each module's code object came from: a .pyc, or source compiled now (which
    # a read-only root would make every run pay again).
    src = installed_root()
    modules = sorted(
        relative.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for relative, _ in runtime_sources(src)
        if not relative.endswith("__main__.py")
    )
    code, _, err = run(
        docker_client, sandbox_image, "python3", "-I", "-v", "-c", f"import {', '.join(modules)}"
    )
    assert code == 0, err
    loaded = [line for line in err.splitlines() if line.startswith("# code object from")]
    assert len(loaded) > len(modules)
    compiled_now = [line for line in loaded if not line.rstrip("'").endswith(".pyc")]
    assert compiled_now == []


def test_no_setuid_or_setgid_file(docker_client, sandbox_image):
    # As root, so that no folder is out of find's reach (/root, /var/cache/ldconfig are 0700).
    argv = ("find", "/", "-xdev", "-perm", "/6000")
    code, out, err = run(docker_client, sandbox_image, *argv, user="0")
    assert (code, out) == (0, ""), err


def test_no_server_code_or_server_dependency(docker_client, sandbox_image):
    # The image carries the mcp SDK (sandbox_image_packages), and with it pydantic, httpx,
    # uvicorn and cryptography: those are the SDK's, loaded only by runs with stdio MCP servers
    # (tests/unit/runtime/test_imports.py checks the runtime never loads them otherwise).
    script = (
        "import importlib, json\n"
        "found = []\n"
        "for name in ('actana.api', 'actana.db', 'actana.cli', 'actana.runs', 'actana.settings',\n"
        "             'actana.sandboxes', 'actana.security', 'fastapi', 'sqlalchemy', 'docker',\n"
        "             'psycopg', 'alembic', 'typer'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "        found.append(name)\n"
        "    except ModuleNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(found))"
    )
    code, out, err = run(docker_client, sandbox_image, "python3", "-I", "-c", script)
    assert code == 0, err
    assert json.loads(out) == []
    code, _, err = run(docker_client, sandbox_image, "python3", "-I", "-c", "import actana.api")
    assert code == 1
    assert "ModuleNotFoundError: No module named 'actana.api'" in err
