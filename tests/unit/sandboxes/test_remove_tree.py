"""`channel_dir.remove_tree` on trees whose folders are read-only (skill bundles are made 0555
on purpose), as a worker that is not root sees them. Root ignores file modes, so under root the
removal runs in a child process with the uid of `nobody`, which owns the tree."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from actana.sandboxes.channel_dir import remove_tree

NOBODY = 65534


def read_only_tree(root: Path) -> Path:
    """channel/skills/hello/{SKILL.md, scripts/run.sh}, folders 0555, files 0444/0555."""
    skill = root / "channel" / "skills" / "hello"
    (skill / "scripts").mkdir(parents=True)
    (skill / "SKILL.md").write_text("# hello\n")
    (skill / "scripts" / "run.sh").write_text("echo hi\n")
    (skill / "SKILL.md").chmod(0o444)
    (skill / "scripts" / "run.sh").chmod(0o555)
    for folder in (skill / "scripts", skill, skill.parent):
        folder.chmod(0o555)
    return root / "channel"


def remove_as_worker(how: str, tree: Path) -> None:
    """Remove `tree` the way a non-root worker would: `remove_tree` ("ours") or a plain
    `shutil.rmtree` ("plain"), in a forked child that drops to `nobody` when we are root."""
    as_nobody = os.geteuid() == 0
    if as_nobody:
        for folder, dirs, files in os.walk(tree.parent):
            for name in [*dirs, *files, "."]:
                os.lchown(Path(folder, name), NOBODY, NOBODY)
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            if as_nobody:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            if how == "ours":
                remove_tree(tree, ignore_errors=True)
            else:
                shutil.rmtree(tree, ignore_errors=True)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def root() -> Iterator[Path]:
    """A folder `nobody` can reach (pytest's own tmp folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="actana-remove-tree-"))
    folder.chmod(0o777)
    yield folder
    for path, dirs, _ in os.walk(folder):  # whatever a failure left: open it, then delete
        for name in dirs:
            Path(path, name).chmod(0o700)
    shutil.rmtree(folder)


def test_a_read_only_skill_tree_is_removed_whole(root: Path) -> None:
    tree = read_only_tree(root)
    remove_as_worker("ours", tree)
    assert not tree.exists()


def test_a_plain_rmtree_would_leave_it_behind(root: Path) -> None:
    # The control: what the shared helper exists for (and why a test as root proves nothing).
    tree = read_only_tree(root)
    remove_as_worker("plain", tree)
    assert (tree / "skills" / "hello" / "SKILL.md").exists()
    shutil.rmtree(tree, ignore_errors=True)
