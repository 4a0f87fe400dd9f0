"""Which files leave the sandbox: regular files under assets/, never what a link points to."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from actana.runtime.upload import collect_files


def test_only_regular_files_are_collected(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    (assets / "sub" / "deeper").mkdir(parents=True)
    (assets / "b.txt").write_text("b")
    (assets / "sub" / "a.csv").write_text("a")
    (assets / "sub" / "deeper" / "c.md").write_text("c")
    (assets / "to_passwd").symlink_to("/etc/passwd")
    (assets / "to_etc").symlink_to("/etc", target_is_directory=True)
    (assets / "to_b").symlink_to("b.txt")  # even a link to a file inside is not a file
    os.mkfifo(assets / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(assets / "sock"))
        files, total = collect_files(assets, 100)
    assert [name for name, _ in files] == ["b.txt", "sub/a.csv", "sub/deeper/c.md"]
    assert total == 3
    assert files[0][1] == assets / "b.txt"


def test_the_count_is_capped_but_the_total_is_told(tmp_path: Path) -> None:
    for i in range(7):
        (tmp_path / f"f{i}").write_text(str(i))
    files, total = collect_files(tmp_path, 5)
    assert (len(files), total) == (5, 7)


def test_an_assets_folder_that_is_a_link_yields_nothing(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret").write_text("s")
    (tmp_path / "assets").symlink_to(tmp_path / "elsewhere")
    assert collect_files(tmp_path / "assets", 100) == ([], 0)
    assert collect_files(tmp_path / "missing", 100) == ([], 0)
