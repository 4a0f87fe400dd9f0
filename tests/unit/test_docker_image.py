"""The sandbox image's bookkeeping, without a daemon: the runtime fingerprint, the build context
and the messages that tell an operator what to do."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import requests
from docker.errors import NotFound

import actana
from actana.sandboxes.docker_image import (
    BUILD_COMMAND,
    DOCKERFILE,
    RUNTIME_LABEL,
    VERSION_LABEL,
    assemble_context,
    build_image,
    connect_docker,
    fingerprint_tree,
    image_ref,
    inspect_image,
    installed_root,
    runtime_fingerprint,
    runtime_sources,
)
from actana.sandboxes.docker_image_packages import PACKAGES_LABEL, packages_label
from actana.sandboxes.errors import SandboxUnavailableError
from actana.settings import Settings

REPO = Path(__file__).resolve().parents[2]
OURS = runtime_fingerprint()


@pytest.fixture
def runtime_copy(tmp_path: Path) -> Path:
    """A copy of the installed runtime (plus a server package) to change at will."""
    root = tmp_path / "site"
    source = installed_root() / "actana"
    for name in ("runtime", "protocol", "api"):
        shutil.copytree(
            source / name, root / "actana" / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copyfile(source / "__init__.py", root / "actana" / "__init__.py")
    return root


def test_the_fingerprint_is_the_installed_runtimes():
    assert fingerprint_tree(installed_root()) == OURS
    assert len(OURS) == 64


def test_the_fingerprint_follows_every_runtime_file(runtime_copy: Path):
    assert fingerprint_tree(runtime_copy) == OURS
    main = runtime_copy / "actana" / "runtime" / "main.py"
    original = main.read_bytes()
    main.write_bytes(original + b"\n# changed\n")
    assert fingerprint_tree(runtime_copy) != OURS
    main.write_bytes(original)
    assert fingerprint_tree(runtime_copy) == OURS

    (runtime_copy / "actana" / "protocol" / "extra.py").write_text("X = 1\n")
    assert fingerprint_tree(runtime_copy) != OURS


def test_the_fingerprint_sees_a_rename(runtime_copy: Path):
    tools = runtime_copy / "actana" / "runtime" / "tools"
    (tools / "shell.py").rename(tools / "shell2.py")
    assert fingerprint_tree(runtime_copy) != OURS


def test_the_fingerprint_ignores_server_code_and_bytecode(runtime_copy: Path):
    (runtime_copy / "actana" / "api" / "new_route.py").write_text("ROUTE = 1\n")
    cache = runtime_copy / "actana" / "runtime" / "__pycache__"
    cache.mkdir()
    (cache / "main.cpython-311.pyc").write_bytes(b"\0" * 16)
    assert fingerprint_tree(runtime_copy) == OURS


def test_the_context_holds_the_dockerfile_and_the_runtime_only(tmp_path: Path):
    context = assemble_context(tmp_path / "context")
    files = sorted(p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file())
    assert "Dockerfile" in files
    assert (context / "Dockerfile").read_bytes() == DOCKERFILE.read_bytes()
    runtime = [f.removeprefix("runtime/") for f in files if f != "Dockerfile"]
    assert runtime == [relative for relative, _ in runtime_sources(installed_root())]
    assert "actana/__init__.py" in runtime
    assert "actana/runtime/main.py" in runtime
    assert "actana/runtime/tools/shell.py" in runtime
    assert "actana/protocol/events.py" in runtime
    allowed = ("actana/runtime/", "actana/protocol/")
    strays = [f for f in runtime if f != "actana/__init__.py" and not f.startswith(allowed)]
    assert strays == []  # no actana/api, actana/db, actana/settings.py, ...
    assert all(f.endswith(".py") and "__pycache__" not in f for f in runtime)


def test_the_context_takes_the_files_of_the_given_root(tmp_path: Path, runtime_copy: Path):
    (runtime_copy / "actana" / "runtime" / "main.py").write_text("CHANGED = True\n")
    context = assemble_context(tmp_path / "context", runtime_copy)
    assert (context / "runtime/actana/runtime/main.py").read_text() == "CHANGED = True\n"
    assert not (context / "runtime/actana/api").exists()


def test_the_dockerfile_ships_with_the_package_and_in_deploy():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_data = data["tool"]["setuptools"]["package-data"]["actana"]
    assert DOCKERFILE.relative_to(REPO / "src" / "actana").as_posix() in package_data
    deploy = REPO / "deploy" / "sandbox.Dockerfile"
    assert deploy.is_symlink()
    assert not Path(deploy.readlink()).is_absolute()
    assert deploy.resolve() == DOCKERFILE.resolve()


def test_the_dockerfile_keeps_its_promises():
    text = DOCKERFILE.read_text()
    for promise in (
        "ARG BASE_IMAGE",
        'ENTRYPOINT ["tini", "--"]',
        'CMD ["python3", "-I", "-m", "actana.runtime.launch"]',
        "USER 10001:10001",
        "PYTHONDONTWRITEBYTECODE=1",
        "LANG=C.UTF-8",
        "-perm /6000",
        f'{RUNTIME_LABEL}="${{ACTANA_RUNTIME}}"',
        f'{VERSION_LABEL}="${{ACTANA_VERSION}}"',
    ):
        assert promise in text


def test_the_image_ref_comes_from_settings():
    assert image_ref(Settings(_env_file=None)) == f"actana-sandbox:{actana.__version__}"
    settings = Settings(_env_file=None, sandbox_image_name="reg.example/sb", sandbox_image_tag="7")
    assert image_ref(settings) == "reg.example/sb:7"


class FakeApi:
    """Answers `inspect_image` like the daemon would; anything else is a test failure."""

    def __init__(self, answer: dict[str, Any] | Exception) -> None:
        self.answer = answer

    def inspect_image(self, ref: str) -> dict[str, Any]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def fake(answer: dict[str, Any] | Exception) -> Any:
    return FakeApi(answer)


def labelled(fingerprint: str | None, version: str = actana.__version__) -> dict[str, Any]:
    labels = {VERSION_LABEL: version} | ({RUNTIME_LABEL: fingerprint} if fingerprint else {})
    # An image built for the default settings carries their Python packages too.
    labels[PACKAGES_LABEL] = packages_label(Settings(_env_file=None).sandbox_image_packages)
    return {"Id": "sha256:" + "a" * 64, "Size": 118_000_000, "Config": {"Labels": labels}}


def test_status_of_a_missing_image():
    status = inspect_image(fake(NotFound("no such image")), "actana-sandbox:9")
    assert not status.present
    assert not status.matches
    assert status.problem == (
        f"the sandbox image actana-sandbox:9 is missing: run `{BUILD_COMMAND}`"
    )


def test_status_of_a_current_image():
    status = inspect_image(fake(labelled(OURS)), "actana-sandbox:1")
    assert status.present
    assert status.matches
    assert status.problem is None
    assert status.fingerprint == OURS
    assert status.version == actana.__version__
    assert status.image_id == "sha256:" + "a" * 64
    assert status.size == 118_000_000


def test_status_of_a_stale_image_says_both_runtimes_and_what_to_run():
    stale = "b" * 64
    status = inspect_image(fake(labelled(stale, "0.0.9")), "actana-sandbox:1")
    assert status.present
    assert not status.matches
    assert status.problem == (
        f"image actana-sandbox:1 carries runtime {'b' * 12} of actana 0.0.9, "
        f"this server has {OURS[:12]} of {actana.__version__}: rebuild with `{BUILD_COMMAND}`"
    )


def test_status_of_an_image_without_labels():
    status = inspect_image(fake({"Id": "sha256:x", "Config": {"Labels": None}}), "python:3")
    assert not status.matches
    assert status.problem is not None
    assert "no actana runtime label" in status.problem
    assert BUILD_COMMAND in status.problem


def test_an_unreachable_daemon_is_unavailable_not_missing():
    api = fake(requests.exceptions.ConnectionError("connection refused"))
    with pytest.raises(SandboxUnavailableError, match="cannot inspect the sandbox image"):
        inspect_image(api, "actana-sandbox:1")


def test_building_a_current_image_does_nothing():
    lines: list[str] = []
    # FakeApi has no build or pull: any attempt to build would raise AttributeError.
    status = build_image(Settings(_env_file=None), fake(labelled(OURS)), log=lines.append)
    assert status.matches
    assert lines == [f"actana-sandbox:{actana.__version__} is up to date (runtime {OURS[:12]})"]


def test_connecting_to_no_daemon_says_what_to_do(tmp_path: Path):
    settings = Settings(_env_file=None, docker_url=f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(SandboxUnavailableError) as caught:
        connect_docker(settings)
    assert f"{tmp_path}/no-docker.sock" in caught.value.message
    assert "ACTANA_DOCKER_URL" in caught.value.message
