"""archive: create, list and extract, and the hostile archives extraction must refuse whole."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.unit.runtime.conftest import LIMITS, Tools


@pytest.fixture(autouse=True)
def escape_hatch(workspace: Path) -> None:
    (workspace / "etc_link").symlink_to("/etc")


def make_zip(
    path: Path, entries: list[tuple[str, bytes, int]], method: int = zipfile.ZIP_DEFLATED
) -> None:
    """A zip of (name, data, unix mode) entries, written as a hostile tool might."""
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.compress_type = method
            z.writestr(info, data)


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, "w:gz") as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)


def tar_member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


# --- happy paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.zip", "out.tar.gz", "out.tar"])
def test_create_then_extract_round_trips(tools: Tools, workspace: Path, name: str) -> None:
    (workspace / "src/sub").mkdir(parents=True)
    (workspace / "src/a.txt").write_text("A")
    (workspace / "src/sub/run.sh").write_text("#!/bin/sh\necho hi\n")
    (workspace / "src/sub/run.sh").chmod(0o755)
    (workspace / "src/link").symlink_to("/etc/passwd")
    os.mkfifo(workspace / "src/pipe")

    created = tools.ok("archive", action="create", archive=f"assets/{name}", paths=["src"])
    assert created["entries"] == 4  # src, src/a.txt, src/sub, src/sub/run.sh
    assert created["skipped"].splitlines() == ["src/link", "src/pipe"]

    listed = tools.ok("archive", action="list", archive=f"assets/{name}")
    assert "src/sub/run.sh" in listed["entries"]

    extracted = tools.ok("archive", action="extract", archive=f"assets/{name}", destination="copy")
    assert extracted["files"] == 2
    assert (workspace / "copy/src/a.txt").read_text() == "A"
    mode = (workspace / "copy/src/sub/run.sh").stat().st_mode
    assert mode & stat.S_IXUSR
    assert not (workspace / "copy/src/link").exists()


def test_extract_keeps_existing_files_unless_overwrite(tools: Tools, workspace: Path) -> None:
    make_zip(workspace / "a.zip", [("f.txt", b"new", 0o100644)])
    (workspace / "f.txt").write_text("old")
    assert "already exists" in str(tools.fails("archive", action="extract", archive="a.zip"))
    assert (workspace / "f.txt").read_text() == "old"
    tools.ok("archive", action="extract", archive="a.zip", overwrite=True)
    assert (workspace / "f.txt").read_text() == "new"


def test_list_shows_links_without_following(tools: Tools, workspace: Path) -> None:
    make_tar(workspace / "l.tgz", [tar_member("ln", kind=tarfile.SYMTYPE, link="/etc/shadow")])
    assert (
        "ln\t0 (symlink to /etc/shadow)"
        in tools.ok("archive", action="list", archive="l.tgz")["entries"]
    )


# --- hostile archives ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("ok.txt", b"x", 0o100644), ("../../evil.txt", b"x", 0o100644)], "'..' component"),
        ([("/tmp/evil.txt", b"x", 0o100644)], "absolute path"),
        ([("C:/evil.txt", b"x", 0o100644)], "drive letter"),
        ([("dir\\evil.txt", b"x", 0o100644)], "backslash"),
        ([("link", b"/etc/passwd", 0o120777)], "symbolic link"),
        ([("dev", b"", 0o020644)], "it is a character device"),
        ([("A.txt", b"x", 0o100644), ("a.txt", b"y", 0o100644)], "same path"),
        ([("bomb.txt", b"\0" * (5 * 1024 * 1024), 0o100644)], "ratio above 100"),
    ],
)
def test_hostile_zips_are_refused_whole(
    tools: Tools, workspace: Path, entries: list[tuple[str, bytes, int]], message: str
) -> None:
    make_zip(workspace / "h.zip", entries)
    error = str(tools.fails("archive", action="extract", archive="h.zip", destination="out"))
    assert message in error
    assert "Nothing was extracted." in error
    assert not (workspace / "out").exists()
    assert not (workspace.parent / "evil.txt").exists()


def test_too_many_files_are_refused(tools: Tools, workspace: Path) -> None:
    make_zip(
        workspace / "many.zip", [(f"f{n}", b"", 0o100644) for n in range(1001)], zipfile.ZIP_STORED
    )
    assert "1001 entries (at most 1000)" in str(
        tools.fails("archive", action="extract", archive="many.zip")
    )
    assert not (workspace / "f0").exists()


def test_too_large_files_are_refused(tools: Tools, workspace: Path) -> None:
    big = os.urandom(11 * 1024 * 1024)  # incompressible: the ratio rule does not fire first
    make_zip(workspace / "big.zip", [("big.bin", big, 0o100644)], zipfile.ZIP_STORED)
    assert "at most 10485760" in str(tools.fails("archive", action="extract", archive="big.zip"))


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (tar_member("ln", kind=tarfile.SYMTYPE, link="/etc"), "symbolic link to '/etc'"),
        (tar_member("hard", kind=tarfile.LNKTYPE, link="/etc/passwd"), "hard link to"),
        (tar_member("fifo", kind=tarfile.FIFOTYPE), "it is a FIFO"),
        (tar_member("../up.txt", b"x"), "'..' component"),
        (tar_member("/abs.txt", b"x"), "absolute path"),
    ],
)
def test_hostile_tars_are_refused_whole(
    tools: Tools, workspace: Path, member: tuple[tarfile.TarInfo, bytes | None], message: str
) -> None:
    make_tar(workspace / "h.tgz", [tar_member("first.txt", b"ok"), member])
    error = str(tools.fails("archive", action="extract", archive="h.tgz"))
    assert message in error
    assert not (workspace / "first.txt").exists()


def test_a_tar_bomb_is_refused(tools: Tools, workspace: Path) -> None:
    # A small valid tar followed by 40 MiB of zeros (still a valid tar to most readers), which
    # gzip shrinks to about 40 KiB: the decompression itself is capped, not only the files.
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as t:
        info, data = tar_member("a.txt", b"x")
        t.addfile(info, io.BytesIO(data or b""))
    (workspace / "bomb.tgz").write_bytes(gzip.compress(plain.getvalue() + bytes(40 << 20)))
    error = str(tools.fails("archive", action="extract", archive="bomb.tgz"))
    assert "the tar stream decompresses to more than" in error
    assert not (workspace / "a.txt").exists()


def test_empty_folders_are_extracted_too(tools: Tools, workspace: Path) -> None:
    folder = tarfile.TarInfo("empty/inner")
    folder.type = tarfile.DIRTYPE
    make_tar(workspace / "d.tgz", [(folder, None), tar_member("f.txt", b"x")])
    result = tools.ok("archive", action="extract", archive="d.tgz", destination="out")
    assert result["files"] == 1
    assert (workspace / "out/empty/inner").is_dir()
    assert (workspace / "out/f.txt").read_bytes() == b"x"


def test_a_symlink_in_the_destination_is_not_followed(tools: Tools, workspace: Path) -> None:
    outside = workspace.parent / "outside"
    outside.mkdir()
    (workspace / "dest").mkdir()
    (workspace / "dest/sub").symlink_to(outside)
    make_zip(workspace / "a.zip", [("sub/planted.txt", b"x", 0o100644)])
    error = str(tools.fails("archive", action="extract", archive="a.zip", destination="dest"))
    assert "is a symlink in the way" in error
    assert not (outside / "planted.txt").exists()


# --- arguments, escapes, caps ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"action": "unzip", "archive": "a.zip"}, "must be one of 'create', 'extract', 'list'"),
        ({"action": "create", "archive": "a.rar", "paths": ["assets"]}, "no archive extension"),
        ({"action": "create", "archive": "a.zip"}, "give paths"),
        ({"action": "create", "archive": "a.zip", "paths": ["nope"]}, "'nope' does not exist"),
        ({"action": "extract", "archive": "nope.zip"}, "does not exist"),
        ({"action": "extract", "archive": "text.txt"}, "not a zip or tar archive"),
        ({"action": "list"}, "missing required argument 'archive'"),
    ],
)
def test_bad_arguments(
    tools: Tools, workspace: Path, args: dict[str, object], message: str
) -> None:
    (workspace / "text.txt").write_text("not an archive")
    assert message in str(tools.fails("archive", **args))


@pytest.mark.parametrize("escape", ["../x.zip", "/tmp/x.zip", "etc_link/x.zip"])
def test_paths_stay_in_the_workspace(tools: Tools, workspace: Path, escape: str) -> None:
    make_zip(workspace / "ok.zip", [("f.txt", b"x", 0o100644)])
    for args in (
        {"action": "create", "archive": escape, "paths": ["assets"]},
        {"action": "create", "archive": "o.zip", "paths": [escape.replace(".zip", "")]},
        {"action": "extract", "archive": escape},
        {"action": "extract", "archive": "ok.zip", "destination": escape.replace(".zip", "")},
        {"action": "list", "archive": escape},
    ):
        error = str(tools.fails("archive", **args))
        assert "outside the workspace" in error or "does not exist" in error, (args, error)
    assert not Path("/tmp/x.zip").exists()


def test_listing_is_capped_with_the_marker(tools: Tools, workspace: Path) -> None:
    make_zip(
        workspace / "l.zip", [(f"a-long-file-name-{n:04}.txt", b"", 0o100644) for n in range(400)]
    )
    result = tools.ok("archive", action="list", archive="l.zip")
    assert result["truncated"] is True
    assert "[... output truncated:" in result["entries"]
    assert len(result["entries"].encode()) < LIMITS.tool_output_bytes + 200
