"""Host state of the native backend: run directories, markers, uid choice, removal, access."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest

from actana.sandboxes import SandboxExistsError, SandboxUnavailableError, get_backend
from actana.sandboxes import native_state as state


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def marker(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "worker_id": "w", "created_at": "2025-01-01T00:00:00+00:00"}


def test_run_dir_layout_and_modes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    run_dir = state.make_run_dir(root, "r1", marker("r1"), None)
    workspace = state.make_workspace(run_dir, None, None)
    assert mode(root) == mode(run_dir) == 0o711  # traversable, not listable
    assert mode(workspace) == 0o700
    assert mode(run_dir / state.MARKER) == 0o600
    assert state.read_marker(run_dir) == marker("r1")
    with pytest.raises(SandboxExistsError):
        state.make_run_dir(root, "r1", marker("r1"), None)


def test_uid_pool_hands_out_distinct_uids_until_exhausted(tmp_path: Path) -> None:
    uids = set()
    for i in range(4):
        m = marker(f"r{i}")
        state.make_run_dir(tmp_path, f"r{i}", m, (5000, 5004))
        assert m["uid"] == m["gid"]
        uids.add(m["uid"])
    assert uids == {5000, 5001, 5002, 5003}
    with pytest.raises(SandboxUnavailableError, match="pool"):
        state.make_run_dir(tmp_path, "r9", marker("r9"), (5000, 5004))
    freed = state.read_marker(tmp_path / "r2")["uid"]  # type: ignore[index]
    state.remove_tree(tmp_path / "r2")  # removing a run frees its uid
    m = marker("r9")
    state.make_run_dir(tmp_path, "r9", m, (5000, 5004))
    assert m["uid"] == freed


def test_remove_tree_handles_read_only_dirs_and_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("x")
    (tree / "a" / "link").symlink_to(outside)
    for p in (tree / "a" / "b", tree / "a", tree):
        p.chmod(0o500)
    state.remove_tree(tree)
    assert not tree.exists()
    assert outside.read_text() == "keep"
    state.remove_tree(tree)  # idempotent


def test_unreachable_for(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir()
    closed.chmod(0o700)
    target = closed / "python"
    target.write_text("")
    target.chmod(0o755)
    assert state.unreachable_for(target, 0, 0, os.X_OK) is None  # root passes everything
    why = state.unreachable_for(target, 424242, 424242, os.X_OK)
    assert why is not None
    assert "denies uid 424242" in why
    assert state.unreachable_for(Path("/usr/bin/env"), 424242, 424242, os.X_OK) is None
    assert state.unreachable_for(tmp_path / "missing", 424242, 424242, os.X_OK) is not None


def test_describe_without_bwrap(tmp_path: Path) -> None:
    backend = get_backend("native", root_dir=tmp_path, use_bwrap="never")
    facts = backend.describe()
    assert facts["available"] is True
    assert facts["bwrap"] == {
        "path": facts["bwrap"]["path"],  # type: ignore[index]
        "version": None,
        "usable": False,
        "error": "disabled (use_bwrap=never)",
    }
    expected = "native(process)+uid(65534)" if os.geteuid() == 0 else "native(process)"
    assert facts["isolation"] == expected


def test_list_own_reports_half_made_dirs_to_the_operator(tmp_path: Path) -> None:
    (tmp_path / "no-marker").mkdir()
    state.make_run_dir(tmp_path, "r1", marker("r1"), None)
    backend = get_backend("native", root_dir=tmp_path, use_bwrap="never")
    everyone = anyio.run(backend.list_own)
    assert sorted((r.run_id, r.worker_id) for r in everyone) == [("no-marker", ""), ("r1", "w")]
    assert [r.run_id for r in anyio.run(backend.list_own, "w")] == ["r1"]
