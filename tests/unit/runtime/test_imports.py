"""The runtime imports the standard library and `actana.protocol` only, and starts fast."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import actana.runtime

RUNTIME_DIR = Path(actana.runtime.__file__).parent
HEAVY = ("pydantic", "httpx", "sqlalchemy", "fastapi", "uvicorn", "anthropic", "openai", "mcp")
# The one runtime module built on the optional `mcp` SDK, and what it may import: it is loaded
# only when a run has stdio MCP servers (checked below: the entry point never loads it).
SDK_MODULES = {"actana.runtime.mcp.stdio": ("mcp", "anyio", "pydantic")}


def runtime_modules() -> list[str]:
    src = RUNTIME_DIR.parent.parent
    return sorted(
        ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        for path in RUNTIME_DIR.rglob("*.py")
        if path.name != "__main__.py"
    )


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(RUNTIME_DIR.parent.parent).with_suffix("").parts)


def allowed(module: str) -> bool:
    top = module.split(".")[0]
    if top == "actana":
        return module in ("actana", "actana.protocol", "actana.runtime") or module.startswith(
            ("actana.protocol.", "actana.runtime.")
        )
    return top in sys.stdlib_module_names or top == "__future__"


def test_every_import_statement_names_the_stdlib_or_protocol() -> None:
    # Function-level imports too: a lazy import of server code would only show up at run time.
    offenders = []
    for path in RUNTIME_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            sdk = SDK_MODULES.get(module_name(path), ())
            offenders += [
                f"{path.name}: {n}" for n in names if not allowed(n) and n.split(".")[0] not in sdk
            ]
    assert offenders == []


def test_importing_the_whole_runtime_loads_nothing_else_of_actana() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {[m for m in runtime_modules() if m not in SDK_MODULES]!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    )
    assert "actana.runtime.tools.shell" in loaded
    assert [m for m in loaded if m.startswith("actana") and not allowed(m)] == []
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []


def test_the_entry_point_imports_only_what_it_may(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "actana.runtime", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
    )
    assert "ACTANA_CHANNEL" in proc.stdout
    imported = [
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and not line.endswith("imported package")
    ][1:]  # the first line is the header
    assert "actana.runtime.main" in imported
    # (Interpreter start-up imports things of its own, e.g. a venv's .pth hooks: only actana's
    # and the heavy packages are checked here; the AST test above covers the rest.)
    assert [m for m in imported if m.startswith("actana") and not allowed(m)] == []
    assert [m for m in imported if m.split(".")[0] in HEAVY] == []


def test_a_run_without_stdio_mcp_servers_does_not_load_asyncio() -> None:
    # asyncio costs every run ~10 ms of imports; only the stdio MCP client needs it.
    code = "import sys, actana.runtime.main; print('asyncio' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "False"
