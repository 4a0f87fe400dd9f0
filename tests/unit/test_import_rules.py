"""DESIGN.md section 2: `protocol` imports nothing of actana, `runtime` only `protocol`, and
nothing outside `sandboxes/` imports a backend module directly. Checked on the source (AST), so
an import hidden inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "actana"
BACKEND_MODULES = {
    "native",
    "native_launch",
    "native_process",
    "native_state",
    "docker",
    "docker_config",
    "docker_sandbox",
    "docker_stream",
    "docker_pool",
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _package_files(package: str) -> list[Path]:
    files = sorted((SRC / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    return files


@pytest.mark.parametrize("path", _package_files("protocol"), ids=lambda p: p.name)
def test_protocol_imports_nothing_of_actana(path):
    inner = [
        n for n in _imports(path) if n.startswith("actana") and not n.startswith("actana.protocol")
    ]
    assert inner == []


# Runtime modules that import the optional `mcp` SDK (lazily loaded, see DESIGN.md section 2).
SDK_MODULES = ("runtime/mcp/stdio.py",)


@pytest.mark.parametrize("path", _package_files("runtime"), ids=lambda p: str(p.relative_to(SRC)))
def test_runtime_imports_only_protocol(path):
    allowed = ("actana.runtime", "actana.protocol")
    inner = [n for n in _imports(path) if n.startswith("actana") and not n.startswith(allowed)]
    assert inner == [], f"{path.name} imports {inner}"
    third_party = {"pydantic", "httpx", "sqlalchemy", "fastapi", "anyio", "starlette"}
    if path.relative_to(SRC).as_posix() in SDK_MODULES:
        # The one module built on the mcp SDK may use what the SDK's API is made of (anyio
        # streams, pydantic errors); it is imported only by runs that have stdio MCP servers.
        third_party -= {"pydantic", "anyio"}
    assert not {n.split(".")[0] for n in _imports(path)} & third_party


def test_backend_modules_are_imported_only_inside_sandboxes():
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(SRC / "sandboxes"):
            continue
        for name in _imports(path):
            parts = name.split(".")
            if (
                parts[:2] == ["actana", "sandboxes"]
                and len(parts) > 2
                and parts[2] in BACKEND_MODULES
            ):
                offenders.append(f"{path.relative_to(SRC)}: {name}")
    assert offenders == []


def test_the_backend_list_is_complete():
    # A new backend module must be added to BACKEND_MODULES, or the rule above would miss it.
    modules = {p.stem for p in (SRC / "sandboxes").glob("*.py")}
    shared = {
        "__init__",
        "base",
        "errors",
        "registry",
        "procfs",
        "docker_image",
        "docker_image_base",
        "docker_image_packages",
        "channel_dir",
    }
    assert modules - shared - {m for m in modules if m.startswith("conformance")} == BACKEND_MODULES
