"""`collect_assets`: files a sandbox left in a folder are copied under the same rules."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from actana.files.assets import AssetRejected, AssetRules, collect_assets

from .bodies import snapshot


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """A sandbox's assets folder and the run's (empty) output folder."""
    source, dest = tmp_path / "sandbox-assets", tmp_path / "outputs"
    source.mkdir()
    dest.mkdir()
    return source, dest


def test_regular_files_are_copied_with_safe_names(folders: tuple[Path, Path]) -> None:
    source, dest = folders
    (source / "result.csv").write_bytes(b"a,b\n")
    (source / "Résumé final.pdf").write_bytes(b"%PDF-1.7")
    (source / "RESULT.csv").write_bytes(b"c,d\n")
    stored, skipped = collect_assets(source, dest)
    assert skipped == []
    assert [(a.name, a.original_name) for a in stored] == [
        ("RESULT.csv", "RESULT.csv"),
        ("Resume_final.pdf", "Résumé final.pdf"),
        ("result-1.csv", "result.csv"),
    ]
    for asset in stored:
        content = (source / asset.original_name).read_bytes()
        assert asset.path.read_bytes() == content
        assert asset.sha256 == hashlib.sha256(content).hexdigest()


def test_links_and_special_files_are_skipped(folders: tuple[Path, Path], tmp_path: Path) -> None:
    source, dest = folders
    secret = tmp_path / "host-secret.txt"
    secret.write_bytes(b"do not leak")
    (source / "ok.txt").write_bytes(b"ok")
    (source / "link.txt").symlink_to(secret)
    os.link(secret, source / "hard.txt")
    (source / "sub").mkdir()
    (source / "sub" / "nested.txt").write_bytes(b"nested")
    os.mkfifo(source / "pipe.txt")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(source / "sock.txt"))
        stored, skipped = collect_assets(source, dest)
    assert [a.name for a in stored] == ["ok.txt"]
    assert sorted(skipped) == ["hard.txt", "link.txt", "pipe.txt", "sock.txt", "sub"]
    assert snapshot(dest) == {"ok.txt": b"ok"}


def test_a_broken_rule_leaves_dest_as_it_was(folders: tuple[Path, Path]) -> None:
    source, dest = folders
    (dest / "input.txt").write_bytes(b"kept")
    (source / "a.txt").write_bytes(b"a")
    (source / "b.exe").write_bytes(b"MZ")
    with pytest.raises(AssetRejected) as info:
        collect_assets(source, dest)
    assert (info.value.rule, info.value.file) == ("extension", "b.exe")
    assert snapshot(dest) == {"input.txt": b"kept"}


def test_caps_apply(folders: tuple[Path, Path]) -> None:
    source, dest = folders
    (source / "a.txt").write_bytes(b"a" * 600)
    (source / "b.txt").write_bytes(b"b" * 600)
    rules = AssetRules(max_file_bytes=1000, max_total_bytes=1000)
    with pytest.raises(AssetRejected) as info:
        collect_assets(source, dest, rules)
    assert (info.value.rule, info.value.file) == ("total_too_large", "b.txt")
    assert snapshot(dest) == {}


def test_a_flood_of_entries_is_refused_before_listing_it_all(folders: tuple[Path, Path]) -> None:
    source, dest = folders
    for i in range(101):
        (source / f"f{i}.txt").touch()
    with pytest.raises(AssetRejected) as info:
        collect_assets(source, dest, AssetRules(max_files=5))
    assert info.value.rule == "too_many_files"
    assert snapshot(dest) == {}
