"""Fixtures for the sandbox runtime's tests: a workspace, its toolbox, a short socket directory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actana.protocol.payloads import RunLimits
from actana.runtime.hardening import set_child_subreaper
from actana.runtime.tools.base import ToolError
from actana.runtime.tools.registry import Toolbox, build_tools

LIMITS = RunLimits(deadline_ms=0, tool_timeout_sec=30, tool_output_bytes=4096, read_file_bytes=2048)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty workspace with its assets/ folder; the path has no symlink in it."""
    root = Path(os.path.realpath(tmp_path / "workspace"))
    (root / "assets").mkdir(parents=True)
    return root


class Tools:
    """Calls tools the way the agent loop does, through a real Toolbox."""

    def __init__(self, root: Path, limits: RunLimits = LIMITS) -> None:
        self.root = root
        self.box = Toolbox(build_tools(limits).values(), str(root), lambda: 60.0)

    def ok(self, name: str, **args: Any) -> dict[str, Any]:
        return self.box.invoke(name, args)

    def fails(self, name: str, **args: Any) -> ToolError:
        with pytest.raises(ToolError) as caught:
            self.box.invoke(name, args)
        return caught.value


@pytest.fixture
def tools(workspace: Path) -> Tools:
    return Tools(workspace)


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Make this process the child subreaper, as the runtime makes itself, for the test only."""
    if not set_child_subreaper(True):
        pytest.skip("PR_SET_CHILD_SUBREAPER needs Linux")
    yield
    set_child_subreaper(False)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory for unix sockets (their paths are limited to ~107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="act-") as name:
        yield Path(name)
