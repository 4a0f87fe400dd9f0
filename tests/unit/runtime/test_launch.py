"""The container launcher's side of the handover: the header is validated strictly, files land
in the workdir with their modes, and nothing in the archive can escape it or leave a link."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import pytest

from actana.protocol.handover import MAGIC, Handover, HandoverError, read_handover
from actana.runtime.launch import extract_files


def _framed(body: bytes) -> bytes:
    return MAGIC + str(len(body)).encode() + b"\n" + body


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def test_a_handover_round_trips_and_leaves_the_stream_at_the_archive():
    handover = Handover(
        argv=["python3", "-c", "pass"],
        env={"A": "b", "OTP_RUN": "tok"},
        rlimits={"NPROC": 64, "CPU": 30},
    )
    stream = io.BytesIO(handover.encode() + b"TAR")
    assert read_handover(stream) == handover
    assert stream.read() == b"TAR"


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (b"", "header"),
        (b"HELLO 12\n{}", "header"),
        (MAGIC + b"abc\n", "length"),
        (MAGIC + b"0\n", "out of range"),
        (MAGIC + b"99999999999\n", "out of range"),
        (MAGIC + b"10\n{}", "ended inside"),
        (MAGIC + b"2\n[]", "object"),
        (MAGIC + b"5\nnope!", "not JSON"),
        (_framed(b'{"argv":[]}'), "argv"),
        (_framed(b'{"argv":["x"],"env":{"a":1}}'), "env"),
        (_framed(b'{"argv":["x"],"env":{},"rlimits":{"AS":-1}}'), "rlimits"),
        (_framed(b'{"argv":["x"],"env":{},"rlimits":{"STACK":1}}'), "rlimits"),
        (_framed(b'{"argv":["x"],"env":{},"workdir":"ws"}'), "workdir"),
    ],
)
def test_a_malformed_handover_is_refused(raw, complaint):
    with pytest.raises(HandoverError, match=complaint):
        read_handover(io.BytesIO(raw))


def test_files_keep_their_modes_and_the_stream_is_drained(tmp_path: Path):
    script_info, script = _file("skills/run.sh", b"#!/bin/sh\necho hi\n", 0o755)
    folder = tarfile.TarInfo("assets")
    folder.type = tarfile.DIRTYPE
    archive = _tar([(folder, None), _file("assets/in.txt", b"data"), (script_info, script)])
    stream = io.BytesIO(archive + b"\0" * 4096)
    assert extract_files(stream, str(tmp_path)) == 2
    assert (tmp_path / "assets" / "in.txt").read_bytes() == b"data"
    mode = (tmp_path / "skills" / "run.sh").stat().st_mode
    assert stat.S_IMODE(mode) == 0o755
    assert stream.read() == b""


def test_nothing_escapes_the_workdir_and_no_link_or_special_bit_is_made(tmp_path: Path):
    workdir = tmp_path / "ws"
    workdir.mkdir()
    link = tarfile.TarInfo("link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "assets/ok.txt"
    fifo = tarfile.TarInfo("fifo")
    fifo.type = tarfile.FIFOTYPE
    archive = _tar(
        [
            _file("../escaped.txt", b"x"),
            _file("/abs.txt", b"x"),
            _file("assets/../../up.txt", b"x"),
            (link, None),
            (hard, None),
            (fifo, None),
            _file("setuid", b"x", 0o4755),
            _file("assets/ok.txt", b"ok"),
        ]
    )
    assert extract_files(io.BytesIO(archive), str(workdir)) == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["assets", "ok.txt", "setuid", "ws"]
    assert stat.S_IMODE((workdir / "setuid").stat().st_mode) == 0o755
