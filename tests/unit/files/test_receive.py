"""`receive_assets`: multipart uploads are stored while streaming, or rejected leaving nothing.

Every body is built by hand in `bodies.py` and fed in small chunks, so part boundaries and
headers are split across chunks the way a slow network splits them. One test streams 26 MiB
against the default rules to show that the cap holds without anything being buffered.
"""

from __future__ import annotations

import asyncio
import hashlib
import stat
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actana.files.assets import AssetRejected, AssetRules, receive_assets

from .bodies import (
    BOUNDARY,
    CONTENT_TYPE,
    body,
    closing,
    expect_rejection,
    field_part,
    file_part,
    receive,
    snapshot,
)

MIB = 1024 * 1024
CHUNK = 64 * 1024
SMALL = AssetRules(max_files=3, max_file_bytes=1000, max_total_bytes=2500)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """The run's folder, already holding one earlier file that must survive every test."""
    folder = tmp_path / "run" / "assets"
    folder.mkdir(parents=True)
    (folder / "earlier.txt").write_bytes(b"from before")
    return folder


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_three_files_and_a_prompt_are_stored(dest: Path, chunk: int) -> None:
    contents = {
        "notes.txt": b"hello\r\n--not a boundary\r\n",
        "data.csv": b"a,b\n1,2\n" * 50,
        "résumé.pdf": bytes(range(256)) * 3,
    }
    data = body(
        field_part("prompt", "Summarise the notes ✓"),
        *(file_part(name, content) for name, content in contents.items()),
        field_part("model", "small"),
    )
    stored, fields = receive(data, dest, chunk=chunk)

    assert fields == {"prompt": "Summarise the notes ✓", "model": "small"}
    assert [asset.name for asset in stored] == ["notes.txt", "data.csv", "resume.pdf"]
    assert [asset.original_name for asset in stored] == list(contents)
    for asset, content in zip(stored, contents.values(), strict=True):
        assert asset.path == dest / asset.name
        assert asset.path.read_bytes() == content
        assert asset.size == len(content)
        assert asset.sha256 == hashlib.sha256(content).hexdigest()
        assert stat.S_IMODE(asset.path.stat().st_mode) & 0o077 == 0  # owner-only
    assert (dest / "earlier.txt").read_bytes() == b"from before"


def test_an_upload_without_files_returns_the_fields(dest: Path) -> None:
    assert receive(body(field_part("prompt", "")), dest) == ([], {"prompt": ""})


def test_empty_files_are_stored(dest: Path) -> None:
    stored, _ = receive(body(file_part("empty.txt", b"")), dest)
    assert stored[0].size == 0
    assert stored[0].sha256 == hashlib.sha256(b"").hexdigest()


def test_duplicate_names_get_suffixes(dest: Path) -> None:
    data = body(
        file_part("report.pdf", b"1"),
        file_part("Report.pdf", b"2"),
        file_part("dir/report.pdf", b"3"),
        file_part("earlier.txt", b"4"),
    )
    stored, _ = receive(data, dest)
    assert [a.name for a in stored] == [
        "report.pdf",
        "Report-1.pdf",
        "report-2.pdf",
        "earlier-1.txt",  # the run's own earlier file is never overwritten
    ]
    assert [(dest / a.name).read_bytes() for a in stored] == [b"1", b"2", b"3", b"4"]
    assert (dest / "earlier.txt").read_bytes() == b"from before"


@pytest.mark.parametrize(
    ("filename", "stored_as"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\x.txt", "x.txt"),
        ("/abs/a.txt", "a.txt"),
        ("a/b/c.txt", "c.txt"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("报告.csv", "file.csv"),
    ],
)
def test_path_components_in_a_filename_are_dropped(
    dest: Path, tmp_path: Path, filename: str, stored_as: str
) -> None:
    stored, _ = receive(body(file_part(filename, b"x")), dest)
    assert [a.name for a in stored] == [stored_as]
    # python_multipart itself cuts an IE-style "C:\\..." path down to its last component.
    assert stored[0].original_name in {filename, filename.rsplit("\\", 1)[-1]}
    assert sorted(p.name for p in dest.iterdir()) == sorted(["earlier.txt", stored_as])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_symlink_planted_in_dest_is_not_followed(dest: Path, tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    target.write_bytes(b"precious")
    (dest / "a.txt").symlink_to(target)
    stored, _ = receive(body(file_part("a.txt", b"overwrite?")), dest)
    assert stored[0].name == "a-1.txt"
    assert target.read_bytes() == b"precious"


def test_dest_must_be_a_real_directory(dest: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(dest)
    with pytest.raises(OSError):  # noqa: PT011 - which OSError depends on the platform
        receive(body(file_part("a.txt", b"x")), link)
    with pytest.raises(FileNotFoundError):
        receive(body(file_part("a.txt", b"x")), tmp_path / "missing")
    assert snapshot(dest) == {"earlier.txt": b"from before"}


def test_too_many_files(dest: Path) -> None:
    parts = [file_part(f"f{i:02}.txt", b"x" * 10) for i in range(1, 22)]
    error = expect_rejection(body(*parts), dest, "too_many_files", file="f21.txt")
    assert "at most 20" in str(error)
    assert error.http_status == 413


def test_one_file_too_large(dest: Path) -> None:
    data = body(file_part("ok.txt", b"x" * 1000), file_part("big.txt", b"y" * 1001))
    error = expect_rejection(data, dest, "file_too_large", file="big.txt", rules=SMALL)
    assert "1000 bytes" in str(error)
    assert (error.http_status, error.code, error.field) == (413, "file_too_large", "files")


def test_total_too_large_across_files(dest: Path) -> None:
    data = body(*(file_part(f"part{i}.csv", b"z" * 900) for i in range(3)))
    error = expect_rejection(data, dest, "total_too_large", file="part2.csv", rules=SMALL)
    assert "2500 bytes" in str(error)
    assert error.http_status == 413


def test_total_cap_default_is_50_mib_across_files() -> None:
    rules = AssetRules()
    assert (rules.max_files, rules.max_file_bytes, rules.max_total_bytes) == (
        20,
        25 * 1024 * 1024,
        50 * 1024 * 1024,
    )


@pytest.mark.parametrize(
    ("filename", "words"),
    [("evil.exe", "'.exe' files"), ("noext", "without an extension"), (".bashrc", "without")],
)
def test_disallowed_extensions(dest: Path, filename: str, words: str) -> None:
    data = body(file_part("fine.txt", b"ok"), file_part(filename, b"MZ"))
    error = expect_rejection(data, dest, "extension", file=filename)
    assert words in str(error)
    assert ".pdf" in str(error)  # the message lists what is allowed
    assert error.http_status == 422


def test_extension_check_ignores_case(dest: Path) -> None:
    stored, _ = receive(body(file_part("SCAN.PDF", b"%PDF")), dest)
    assert stored[0].name == "SCAN.PDF"


def test_an_empty_filename_is_rejected(dest: Path) -> None:
    data = body(file_part("a.txt", b"a"), file_part("", b""))
    error = expect_rejection(data, dest, "empty_name", file="")
    assert error.http_status == 422


def test_the_rejected_name_is_shown_escaped(dest: Path) -> None:
    error = expect_rejection(body(file_part("x\x1b[2J.exe", b"")), dest, "extension", file=None)
    assert error.file == "x\\x1b[2J.exe"
    assert "\x1b" not in str(error)


def test_a_field_that_is_too_big(dest: Path) -> None:
    data = body(file_part("a.txt", b"a"), field_part("prompt", "p" * 101))
    error = expect_rejection(data, dest, "field_too_large", file=None, max_field_bytes=100)
    assert "field 'prompt'" in str(error)
    assert error.field == "prompt"
    assert "100 bytes" in str(error)
    assert error.http_status == 413


def test_fields_are_capped_in_number_and_in_total(dest: Path) -> None:
    many = body(*(field_part(f"f{i}", "v") for i in range(4)))
    expect_rejection(many, dest, "too_many_fields", file=None, max_fields=3)
    big = body(field_part("a", "x" * 60), field_part("b", "y" * 60))
    expect_rejection(big, dest, "fields_too_large", file=None, max_total_field_bytes=100)


@pytest.mark.parametrize(
    ("data", "content_type", "words"),
    [
        (body(file_part("a.txt", b"a")), "multipart/form-data", "no boundary"),
        (body(file_part("a.txt", b"a")), "application/json", "must be multipart/form-data"),
        (body(file_part("a.txt", b"a")), "", "must be multipart/form-data"),
        (file_part("a.txt", b"a" * 50), CONTENT_TYPE, "before its closing boundary"),
        (body(file_part("a.txt", b"a"))[:-30], CONTENT_TYPE, "before its closing boundary"),
        (b"", CONTENT_TYPE, "before its closing boundary"),
        (b"garbage" + body(file_part("a.txt", b"a")), CONTENT_TYPE, "malformed"),
        (
            f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n".encode() + closing(),
            CONTENT_TYPE,
            "Content-Disposition",
        ),
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; filename="a.txt"\r\n'.encode()
            + b"\r\nx\r\n"
            + closing(),
            CONTENT_TYPE,
            "no field name",
        ),
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="a.txt"\r\nContent-Transfer-Encoding: base64\r\n\r\nYQ==\r\n'.encode()
            + closing(),
            CONTENT_TYPE,
            "Content-Transfer-Encoding",
        ),
        (body(file_part("a.txt", b"a", name="attachment")), CONTENT_TYPE, "'files' field"),
        (body(field_part("files", "not a file")), CONTENT_TYPE, "no filename"),
        (body(field_part("prompt", "a"), field_part("prompt", "b")), CONTENT_TYPE, "more than"),
        (body(field_part("prompt", b"\xff\xfe")), CONTENT_TYPE, "not UTF-8"),
    ],
)
def test_malformed_bodies_are_bad_requests(
    dest: Path, data: bytes, content_type: str, words: str
) -> None:
    error = expect_rejection(data, dest, "bad_request", file=None, content_type=content_type)
    assert words in str(error)
    assert error.http_status == 400


def test_a_truncated_body_removes_the_files_already_complete(dest: Path) -> None:
    data = body(file_part("one.txt", b"1" * 100), file_part("two.txt", b"2" * 100))
    expect_rejection(data[: len(data) - 60], dest, "bad_request", file=None)


def test_the_epilogue_is_not_read(dest: Path) -> None:
    read = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal read
        yield body(file_part("a.txt", b"a"))
        while True:  # a hostile sender that never stops after the closing boundary
            read += 1
            yield b"junk" * 1000

    stored, _ = asyncio.run(receive_assets(endless(), CONTENT_TYPE, dest, AssetRules()))
    assert [a.name for a in stored] == ["a.txt"]
    assert read == 0


def test_the_whole_body_is_capped_too(dest: Path) -> None:
    # The parser skips line breaks before the first boundary without reporting them; a sender
    # could stream those forever if nothing counted the body itself.
    rules = AssetRules(max_files=1, max_file_bytes=100, max_total_bytes=100)
    junk = b"\r\n" * (3 * 64 * 1024 + 100)
    error = expect_rejection(
        junk + body(file_part("a.txt", b"a")),
        dest,
        "total_too_large",
        file=None,
        rules=rules,
        max_fields=1,
        max_total_field_bytes=100,
        chunk=4096,
    )
    assert "body is larger than" in str(error)


def test_cancelling_mid_upload_removes_the_partial_file(dest: Path) -> None:
    async def scenario() -> None:
        stalled = asyncio.Event()

        async def stalls() -> AsyncIterator[bytes]:
            yield file_part("one.txt", b"1" * 10)
            yield file_part("two.txt", b"2" * 100)[:-20]
            stalled.set()
            await asyncio.Event().wait()  # the client goes quiet
            yield b""  # pragma: no cover

        task = asyncio.create_task(receive_assets(stalls(), CONTENT_TYPE, dest, AssetRules()))
        await stalled.wait()
        for _ in range(500):  # the last chunk is parsed in a worker thread; wait for it
            if (dest / "two.txt").exists():
                break
            await asyncio.sleep(0.01)
        assert (dest / "two.txt").exists()  # it really was being written
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert snapshot(dest) == {"earlier.txt": b"from before"}


def test_rules_are_validated() -> None:
    with pytest.raises(ValueError, match="positive"):
        AssetRules(max_files=0)
    with pytest.raises(ValueError, match="lower-case"):
        AssetRules(allowed_extensions=frozenset({".PDF"}))
    with pytest.raises(ValueError, match="lower-case"):
        AssetRules(allowed_extensions=frozenset({"pdf"}))
    with pytest.raises(ValueError, match="max_name_length"):
        AssetRules(max_name_length=10)


def test_the_error_is_an_api_error() -> None:
    error = AssetRejected("extension", "no", file="a.exe", field="files")
    assert (error.code, error.http_status, error.field) == ("extension", 422, "files")
    assert isinstance(error, ValueError)


def test_a_26_mib_file_is_rejected_at_25_mib_without_buffering(tmp_path: Path) -> None:
    dest = tmp_path / "assets"
    dest.mkdir()
    zeros = bytes(CHUNK)  # one buffer, yielded again and again: the test holds no 26 MiB
    sent = 0
    on_disk_midway = 0

    async def upload() -> AsyncIterator[bytes]:
        nonlocal sent, on_disk_midway
        yield file_part("huge.csv", b"")[:-2]  # the part's headers; the content follows
        for _ in range(26 * MIB // CHUNK):
            if sent == 20 * MIB:
                # Proof that data goes to disk as it arrives rather than piling up somewhere.
                on_disk_midway = (dest / "huge.csv").stat().st_size
            sent += len(zeros)
            yield zeros
        yield b"\r\n" + closing()  # pragma: no cover - reading stops long before

    tracemalloc.start()
    try:
        with pytest.raises(AssetRejected) as info:
            asyncio.run(receive_assets(upload(), CONTENT_TYPE, dest, AssetRules()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    error = info.value
    assert (error.rule, error.file, error.http_status) == ("file_too_large", "huge.csv", 413)
    assert "25 MiB" in str(error)
    assert on_disk_midway >= 19 * MIB
    assert sent <= 25 * MIB + CHUNK  # reading stopped at the cap, not at the end of the body
    assert peak < 2 * MIB, f"{peak} bytes were held at the peak"
    assert snapshot(dest) == {}  # the partial file is gone
