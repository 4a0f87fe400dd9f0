"""The backend registry: lookup by name, clear errors, plugins, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from actana.sandboxes import (
    SandboxUnavailableError,
    UnknownSandboxBackendError,
    get_backend,
    known_backends,
    registry,
    sandbox_backend,
)
from actana.sandboxes.registry import unregister_sandbox_backend


class FakeBackend:
    """Stands in for a backend: the registry only calls the factory."""

    def __init__(self, root_dir: Path, options: Mapping[str, Any]) -> None:
        self.root_dir, self.options = root_dir, dict(options)


@pytest.fixture
def fake() -> Iterator[str]:
    sandbox_backend("fake-test")(FakeBackend)  # type: ignore[type-var]
    yield "fake-test"
    unregister_sandbox_backend("fake-test")


def test_registered_factory_gets_root_dir_and_options(fake: str, tmp_path: Path) -> None:
    backend: Any = get_backend(fake, root_dir=tmp_path, colour="blue")
    assert isinstance(backend, FakeBackend)
    assert (backend.root_dir, backend.options) == (tmp_path, {"colour": "blue"})
    assert fake in known_backends()


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownSandboxBackendError) as caught:
        get_backend("kubernetes-someday", root_dir=tmp_path)
    assert "native" in str(caught.value)
    assert "actana.sandboxes" in str(caught.value)  # where plugins register
    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, SandboxUnavailableError)


class FakeEntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name, self.value, self.target = name, f"plugin:{name}", target

    def load(self) -> object:
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


def test_plugins_load_once_broken_ones_are_logged_builtins_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def entry_points(group: str) -> list[FakeEntryPoint]:
        calls.append(group)
        return [
            FakeEntryPoint("plugged", FakeBackend),
            FakeEntryPoint("broken", ImportError("no such module")),
            FakeEntryPoint("native", FakeBackend),  # must not replace the built-in
        ]

    monkeypatch.setattr(registry, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_factories", dict(registry._factories))
    assert isinstance(get_backend("plugged", root_dir=tmp_path), FakeBackend)
    assert "broken" in caplog.text
    assert "broken" not in known_backends()
    assert not isinstance(get_backend("native", root_dir=tmp_path), FakeBackend)
    assert calls == ["actana.sandboxes"]


def test_native_options_are_validated_by_the_backend(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailableError, match="unknown option"):
        get_backend("native", root_dir=tmp_path, use_docker=True)
    with pytest.raises(SandboxUnavailableError, match="use_bwrap"):
        get_backend("native", root_dir=tmp_path, use_bwrap="sometimes")
    with pytest.raises(SandboxUnavailableError, match="root"):
        get_backend("native", root_dir=tmp_path, run_uid=0)
    with pytest.raises(SandboxUnavailableError, match="nobody"):
        get_backend("native", root_dir=tmp_path, uid_pool=(65500, 65600))


def test_importing_the_package_imports_no_backend() -> None:
    code = (
        "import sys, actana.sandboxes, actana.sandboxes.conformance;"
        "print(sorted(m for m in sys.modules if m.startswith('actana.sandboxes.native')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
