"""Hostile-input tests for `actana.files.archive`: every bad archive is built right here."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import random
import stat
import struct
import tarfile
import zipfile
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import pytest

from actana.files import archive
from actana.files.archive import (
    ArchiveLimits,
    ArchiveMember,
    ArchiveRejected,
    read_archive,
    write_members,
)

SCRIPT = b"#!/bin/sh\necho hello\n"
README = b"# A skill\n"
INTRO = "Bonjour, données\n".encode()

# --- builders --------------------------------------------------------------------------------


def zinfo(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def make_zip(*entries: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name if isinstance(name, zipfile.ZipInfo) else zinfo(name), data)
    return buf.getvalue()


def tinfo(
    name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, mode: int = 0o644
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "": bytes,
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
}


def make_tar(*entries: tuple[tarfile.TarInfo, bytes], compression: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.TarFile(
        fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return COMPRESSORS[compression](buf.getvalue())


def central_headers(data: bytes) -> list[int]:
    """Offsets of the central-directory file headers of a (non-zip64) zip."""
    eocd = data.rindex(b"PK\x05\x06")
    (count,) = struct.unpack_from("<H", data, eocd + 10)
    (offset,) = struct.unpack_from("<I", data, eocd + 16)
    found = []
    for _ in range(count):
        assert data[offset : offset + 4] == b"PK\x01\x02"
        found.append(offset)
        lengths = struct.unpack_from("<3H", data, offset + 28)
        offset += 46 + sum(lengths)
    return found


def patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def rejected(
    data: bytes, rule: str, entry: str | None = None, limits: ArchiveLimits | None = None
) -> ArchiveRejected:
    with pytest.raises(ArchiveRejected) as caught:
        read_archive(data, limits or ArchiveLimits())
    exc = caught.value
    assert exc.rule == rule, str(exc)
    assert f"rule {rule}" in str(exc)
    if entry is not None:
        assert exc.entry == entry
        assert f"'{entry}'" in str(exc)
    return exc


def forbid_data_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, fail the test if any zip entry is opened (i.e. data would be decompressed).

    Call it after building the archive: zipfile's own writer goes through `open` too.
    """

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("entry data was read before the metadata checks finished")

    monkeypatch.setattr(zipfile.ZipFile, "open", refuse)


def check_good_members(members: list[ArchiveMember]) -> None:
    assert [m.path for m in members] == ["README.md", "docs/guide/intro.md", "scripts/run.sh"]
    by_path = {m.path: m for m in members}
    assert by_path["scripts/run.sh"].data == SCRIPT
    assert by_path["scripts/run.sh"].executable is True
    assert by_path["README.md"].executable is False
    assert by_path["docs/guide/intro.md"].data == INTRO
    for member in members:
        assert member.sha256 == hashlib.sha256(member.data).hexdigest()


# --- good archives ---------------------------------------------------------------------------


def test_good_zip_with_dirs_and_executable() -> None:
    data = make_zip(
        (zinfo("scripts/", stat.S_IFDIR | 0o755), b""),
        (zinfo("scripts/run.sh", stat.S_IFREG | 0o755), SCRIPT),
        (zinfo("README.md"), README),
        (zinfo("docs/guide/intro.md", 0), INTRO),  # no unix mode at all, as Windows tools write
    )
    check_good_members(read_archive(data))


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz", ""])
def test_good_tar_with_dirs_and_executable(compression: str) -> None:
    data = make_tar(
        tinfo("./", kind=tarfile.DIRTYPE, mode=0o755),
        tinfo("./scripts/", kind=tarfile.DIRTYPE, mode=0o755),
        tinfo("./scripts/run.sh", SCRIPT, mode=0o755),
        tinfo("./README.md", README),
        tinfo("docs/guide/intro.md", INTRO),
        compression=compression,
    )
    check_good_members(read_archive(data))


def test_empty_zip_is_fine() -> None:
    assert read_archive(make_zip()) == []


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "a/../../x", "a/.."])
def test_zip_slip_is_path_traversal(name: str) -> None:
    rejected(make_zip((name, b"x")), "path_traversal", name)


def test_tar_slip_is_path_traversal() -> None:
    rejected(make_tar(tinfo("../../etc/cron.d/x", b"x"), compression="gz"), "path_traversal")


@pytest.mark.parametrize("name", ["/etc/x", "C:\\x", "c:x", "//server/share"])
def test_absolute_and_drive_paths(name: str) -> None:
    rejected(make_zip((name, b"x")), "absolute_path", name)


def test_tar_absolute_path() -> None:
    rejected(make_tar(tinfo("/etc/x", b"x")), "absolute_path", "/etc/x")


@pytest.mark.parametrize("name", ["a\\b.txt", "..\\x"])
def test_backslash_names(name: str) -> None:
    rejected(make_zip((name, b"x")), "bad_name", name)


@pytest.mark.parametrize(
    ("name", "shown"), [("esc\x1bname", "esc\\x1bname"), ("line\nbreak", "line\\x0abreak")]
)
def test_control_characters(name: str, shown: str) -> None:
    rejected(make_zip((name, b"x")), "bad_name", shown)


def test_nul_in_zip_name() -> None:
    # zipfile truncates names at NUL when writing, so plant the byte by hand.
    data = make_zip(("evilX.txt", b"x")).replace(b"evilX", b"evil\x00")
    rejected(data, "bad_name", "evil\\x00.txt")


@pytest.mark.parametrize("name", ["a//b.txt", "a//", ".", "./."])
def test_empty_components(name: str) -> None:
    rejected(make_zip((name, b"")), "bad_name", name)


def test_dot_components_are_normalised_away() -> None:
    members = read_archive(make_zip(("./", b""), ("./a/./b.txt", b"x"), ("a/./", b"")))
    assert [m.path for m in members] == ["a/b.txt"]


def test_non_utf8_zip_name_without_flag() -> None:
    # latin-1 "é" with no UTF-8 flag: zipfile would happily show it as cp437 "Θ".
    data = make_zip(("cafX.txt", b"x")).replace(b"cafX", b"caf\xe9")
    rejected(data, "bad_name", "caf\\xe9.txt")


def test_zip_name_flagged_utf8_but_invalid() -> None:
    data = make_zip(("caf\u00e9.txt", b"x")).replace("\u00e9".encode(), b"\xff\xfe")
    exc = rejected(data, "bad_name")
    assert "caf" in str(exc)


def test_utf8_zip_names_are_accepted() -> None:
    members = read_archive(make_zip(("données/é.txt", b"x")))
    assert [m.path for m in members] == ["données/é.txt"]


def test_non_utf8_tar_name() -> None:
    data = make_tar(tinfo("caf\udce9.txt", b"x"), compression="gz")
    rejected(data, "bad_name", "caf\\udce9.txt")


def test_path_length_and_depth_caps() -> None:
    rejected(make_zip(("a/" * 17 + "x", b"")), "too_deep")
    rejected(make_zip(("x" * 256, b"")), "path_too_long")
    assert read_archive(make_zip(("a/" * 15 + "x", b"")))[0].path == "a/" * 15 + "x"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("a.txt", "a.txt"),
        ("README.md", "readme.MD"),
        ("a/b.txt", "./a/b.txt"),
        ("caf\u00e9", "cafe\u0301"),  # NFC vs NFD: one file on macOS
        ("a", "a/b.txt"),  # a file used as a directory
        ("a/b.txt", "a"),
    ],
)
def test_duplicates(first: str, second: str) -> None:
    with pytest.warns(UserWarning, match="Duplicate") if first == second else nullcontext():
        data = make_zip((first, b"1"), (second, b"2"))
    rejected(data, "duplicate", second)


def test_tar_duplicates() -> None:
    rejected(make_tar(tinfo("x.txt", b"1"), tinfo("./X.txt", b"2")), "duplicate", "./X.txt")


# --- entry types -----------------------------------------------------------------------------


def test_zip_symlink() -> None:
    data = make_zip((zinfo("link", stat.S_IFLNK | 0o777), b"/etc/passwd"))
    rejected(data, "symlink", "link")


@pytest.mark.parametrize("kind", [stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK])
def test_zip_special_files(kind: int) -> None:
    rejected(make_zip((zinfo("dev", kind | 0o600), b"")), "special_file", "dev")


def test_tar_symlink() -> None:
    link = tarfile.TarInfo("link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    exc = rejected(make_tar((link, b""), compression="gz"), "symlink", "link")
    assert "/etc/passwd" in str(exc)


@pytest.mark.parametrize("target", ["/etc/passwd", "a.txt"])
def test_tar_hardlink_outside_and_inside(target: str) -> None:
    link = tarfile.TarInfo("link")
    link.type = tarfile.LNKTYPE
    link.linkname = target
    rejected(make_tar(tinfo("a.txt", b"a"), (link, b"")), "hardlink", "link")


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_tar_fifo_and_devices(kind: bytes) -> None:
    info, _ = tinfo("dev", kind=kind)
    info.devmajor, info.devminor = 1, 3
    rejected(make_tar((info, b"")), "special_file", "dev")


def test_encrypted_zip_entry() -> None:
    data = make_zip(("secret.txt", b"x"))
    (central,) = central_headers(data)
    data = patch(data, central + 8, "<H", 0x1)  # general-purpose flag bit 0: encrypted
    rejected(data, "encrypted", "secret.txt")


def test_zip_bzip2_method_is_unsupported() -> None:
    info = zinfo("a.txt")
    info.compress_type = zipfile.ZIP_BZIP2
    rejected(make_zip((info, b"x" * 100)), "unsupported", "a.txt")


# --- sizes and bombs -------------------------------------------------------------------------


def test_high_ratio_zip_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("bomb.bin", "w") as out:
        chunk = bytes(1024 * 1024)
        for _ in range(50):  # 50 MB of zeros, ~50 KB compressed; never held in memory whole
            out.write(chunk)
    forbid_data_reads(monkeypatch)
    limits = ArchiveLimits(max_file_bytes=100 * 2**20, max_total_bytes=100 * 2**20)
    rejected(buf.getvalue(), "ratio", "bomb.bin", limits)
    rejected(buf.getvalue(), "ratio", "bomb.bin")


def test_declared_sizes_over_the_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_zip(("a.bin", os.urandom(3000)), ("b.bin", os.urandom(3000)))
    forbid_data_reads(monkeypatch)
    rejected(data, "too_large", "a.bin", ArchiveLimits(max_file_bytes=2000))
    rejected(data, "too_large", "b.bin", ArchiveLimits(max_total_bytes=5000))


def test_lying_declared_size_is_stopped_by_the_streaming_count() -> None:
    data = make_zip(("liar.bin", bytes(1024 * 1024)))  # 1 MiB of zeros, ~1 KiB compressed
    (central,) = central_headers(data)
    data = patch(data, central + 24, "<I", 1000)  # central directory: uncompressed size
    data = patch(data, 22, "<I", 1000)  # local header: uncompressed size
    exc = rejected(data, "too_large", "liar.bin", ArchiveLimits(max_file_bytes=64 * 1024))
    assert "declared 1000" in str(exc)


def test_corrupt_deflate_data_names_the_entry() -> None:
    data = bytearray(make_zip(("a.txt", os.urandom(5000))))
    data[100:140] = bytes(40)  # inside the compressed data of the only entry
    rejected(bytes(data), "not_an_archive", "a.txt")


def test_overlapping_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_zip(("a.txt", b"A" * 1000))
    (central,) = central_headers(data)
    eocd = data.rindex(b"PK\x05\x06")
    record = data[central:eocd]
    # A second central-directory record for the same local file: both point at offset 0.
    twin = record.replace(b"a.txt", b"b.txt")
    cd = record + twin
    end = bytearray(data[eocd:])
    struct.pack_into("<HHI", end, 8, 2, 2, len(cd))
    forbid_data_reads(monkeypatch)
    rejected(data[:central] + cd + bytes(end), "overlap", "b.txt")


def test_data_running_into_the_central_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_zip(("a.txt", os.urandom(100)))
    (central,) = central_headers(data)
    (size,) = struct.unpack_from("<I", data, central + 20)
    data = patch(data, central + 20, "<I", size + 40)  # compressed size now covers the CD
    data = patch(data, central + 24, "<I", size + 40)
    forbid_data_reads(monkeypatch)
    rejected(data, "overlap", "a.txt")


def _zip_of_empty_files(count: int) -> bytes:
    """A zip64 archive of `count` empty stored files, written by hand because it is fast."""
    local, central, offset = [], [], 0
    for index in range(count):
        name = b"%06d" % index
        header = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0)
        local.append(header + name)
        central.append(
            struct.pack(
                "<4s6H3I5H2I",
                b"PK\x01\x02",
                20,
                20,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
        offset += len(header) + len(name)
    cd = b"".join(central)
    zip64_end = struct.pack(
        "<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(cd), offset
    )
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, offset + len(cd), 1)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(cd), offset, 0)
    return b"".join(local) + cd + zip64_end + locator + end


def test_hundred_thousand_entries_rejected_by_count(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _zip_of_empty_files(100_000)
    forbid_data_reads(monkeypatch)
    exc = rejected(data, "too_many_entries")
    assert "100000" in str(exc)


def test_tar_entry_count() -> None:
    data = make_tar(*(tinfo(f"f{i}") for i in range(11)), compression="gz")
    rejected(data, "too_many_entries", limits=ArchiveLimits(max_entries=10))


def test_tar_gz_stream_bomb_is_capped() -> None:
    # Zeros after the end-of-archive marker still make a valid tar; only the stream cap stops
    # a gzip that inflates to gigabytes of them.
    tar = make_tar(tinfo("a.txt", b"a"))
    data = gzip.compress(tar + bytes(4 * 1024 * 1024))
    limits = ArchiveLimits(max_entries=4, max_total_bytes=64 * 1024)
    exc = rejected(data, "too_large", limits=limits)
    assert "decompresses" in str(exc)
    assert read_archive(gzip.compress(tar + bytes(8192)), limits)[0].data == b"a"


def test_tar_declared_sizes() -> None:
    data = make_tar(tinfo("big.bin", bytes(5000)), compression="gz")
    rejected(data, "too_large", "big.bin", ArchiveLimits(max_file_bytes=4096))


# --- not archives ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(gzip.compress(b"just some text\n" * 100), id="gzip-text"),
        pytest.param(bz2.compress(b"just some text\n" * 100), id="bz2-text"),
        pytest.param(lzma.compress(b"just some text\n" * 100), id="xz-text"),
        pytest.param(random.Random(7).randbytes(4096), id="random"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\x1f\x8b\x08\x00garbage", id="broken-gzip"),
        pytest.param(bytes(10240), id="zeros"),
    ],
)
def test_not_an_archive(data: bytes) -> None:
    rejected(data, "not_an_archive")


def test_truncated_zip() -> None:
    rejected(make_zip(("a.txt", b"x" * 100))[:-10], "not_an_archive")


def test_tar_with_garbage_after_the_end() -> None:
    tar = make_tar(tinfo("a.txt", b"a"))
    rejected(tar + b"junk" * 128, "not_an_archive")


def test_tar_truncated_at_a_header_boundary() -> None:
    tar = make_tar(tinfo("a.txt", b"a"), tinfo("b.txt", b"b"))
    # Header and data of a.txt, then nothing: tarfile alone would report just a.txt.
    rejected(tar[: 2 * 512], "not_an_archive")


def test_tar_truncated_inside_data() -> None:
    tar = make_tar(tinfo("a.txt", b"a" * 2000))
    rejected(tar[:1024], "not_an_archive")


def test_rejection_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not_an_archive"):
        read_archive(b"nope")


# --- write_members ---------------------------------------------------------------------------


def _members() -> list[ArchiveMember]:
    return read_archive(
        make_zip(
            (zinfo("scripts/run.sh", stat.S_IFREG | 0o755), SCRIPT),
            (zinfo("README.md"), README),
            (zinfo("docs/guide/intro.md"), INTRO),
        )
    )


def test_write_members_modes_and_content(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    write_members(_members(), dest)
    assert (dest / "scripts/run.sh").read_bytes() == SCRIPT
    assert (dest / "docs/guide/intro.md").read_bytes() == INTRO
    assert stat.S_IMODE((dest / "scripts/run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "README.md").stat().st_mode) == 0o644


def test_write_members_refuses_non_empty_or_missing_dest(tmp_path: Path) -> None:
    (tmp_path / "stray").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        write_members(_members(), tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        write_members(_members(), tmp_path / "missing")


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An output dir and its empty sibling; the emptiness check is disabled to simulate a link
    planted between that check and the writes."""
    dest, outside = tmp_path / "out", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    monkeypatch.setattr(archive, "_require_empty_dir", lambda _dest: None)
    return dest, outside


def test_planted_symlink_to_outside_is_not_followed(planted: tuple[Path, Path]) -> None:
    dest, outside = planted
    (dest / "README.md").symlink_to(outside / "README.md")
    with pytest.raises((OSError, ValueError)):
        write_members(_members(), dest)
    assert list(outside.iterdir()) == []


def test_planted_dangling_symlink_inside_is_not_followed(planted: tuple[Path, Path]) -> None:
    dest, outside = planted
    (dest / "README.md").symlink_to(dest / "elsewhere.md")  # resolves inside dest
    with pytest.raises(FileExistsError):  # O_CREAT|O_EXCL|O_NOFOLLOW refuses any link
        write_members(_members(), dest)
    assert not (dest / "elsewhere.md").exists()
    assert list(outside.iterdir()) == []


def test_planted_symlinked_parent_directory(planted: tuple[Path, Path]) -> None:
    dest, outside = planted
    (dest / "scripts").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="not a plain directory"):
        write_members(_members(), dest)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("path", ["../outside/x", "/tmp/x", "a//b", "./a"])
def test_write_members_rechecks_paths(tmp_path: Path, path: str) -> None:
    dest, outside = tmp_path / "out", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    member = ArchiveMember(path, b"x", False, hashlib.sha256(b"x").hexdigest())
    with pytest.raises(ArchiveRejected):
        write_members([member], dest)
    assert list(outside.iterdir()) == []
    assert list(dest.iterdir()) == []
