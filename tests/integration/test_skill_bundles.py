"""Skill bundles over HTTP: a good bundle is stored file by file; hostile ones get a clear 4xx."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import pytest

SKILL_MD = "---\nname: pdf-tools\ndescription: Extract text from PDF files\n---\n# PDF tools\n"


def _zip(entries: dict[str, bytes], *, modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (modes or {}).get(name, 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def _tar(members: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for info in members:
            payload = data.get(info.name)
            archive.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


def _upload(tenant, payload: bytes, filename: str = "skill.zip", **form: str):
    return tenant.client.post(
        tenant.path("/skills/upload"),
        files={"bundle": (filename, payload, "application/octet-stream")},
        data=form,
    )


def test_good_bundle_is_stored_with_hashes_and_modes(tenant):
    script = b"#!/bin/sh\necho extracted\n"
    payload = _zip(
        {"pdf-tools/SKILL.md": SKILL_MD.encode(), "pdf-tools/scripts/extract.sh": script},
        modes={"pdf-tools/scripts/extract.sh": 0o100755},
    )
    r = _upload(tenant, payload)
    assert r.status_code == 201, r.text
    skill = r.json()
    assert skill["name"] == "pdf-tools"
    assert skill["description"] == "Extract text from PDF files"
    files = {f["path"]: f for f in skill["files"]}
    assert set(files) == {"SKILL.md", "scripts/extract.sh"}
    assert files["scripts/extract.sh"]["executable"] is True
    assert files["SKILL.md"]["executable"] is False
    assert files["scripts/extract.sh"]["sha256"] == hashlib.sha256(script).hexdigest()
    assert files["scripts/extract.sh"]["size"] == len(script)

    # A new bundle version changes the content hash; the same bytes again do not.
    changed = _zip({"SKILL.md": SKILL_MD.encode(), "scripts/extract.sh": script + b"# v2\n"})
    r2 = tenant.client.put(
        tenant.path(f"/skills/{skill['id']}/bundle"),
        files={"bundle": ("skill.zip", changed, "application/zip")},
    )
    assert r2.status_code == 200, r2.text
    assert r2.json()["content_hash"] != skill["content_hash"]


def test_bundle_needs_skill_md_and_front_matter(tenant):
    r = _upload(tenant, _zip({"README.md": b"hi"}))
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "bundle"
    assert "SKILL.md" in r.json()["error"]["message"]
    r = _upload(tenant, _zip({"SKILL.md": b"# no front matter\n"}))
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "name"
    r = _upload(tenant, _zip({"SKILL.md": b"# no front matter\n"}), name="ok-name", description="d")
    assert r.status_code == 201, r.text


def _symlink_zip() -> bytes:
    return _zip({"SKILL.md": SKILL_MD.encode(), "link": b"/etc/passwd"}, modes={"link": 0o120777})


def _tar_with(kind: str) -> bytes:
    skill = tarfile.TarInfo("SKILL.md")
    skill.size = len(SKILL_MD)
    bad = tarfile.TarInfo("evil")
    if kind == "hardlink":
        bad.type, bad.linkname = tarfile.LNKTYPE, "/etc/passwd"
    elif kind == "symlink":
        bad.type, bad.linkname = tarfile.SYMTYPE, "../../outside"
    elif kind == "fifo":
        bad.type = tarfile.FIFOTYPE
    else:
        bad.type, bad.devmajor, bad.devminor = tarfile.CHRTYPE, 1, 3
    return _tar([skill, bad], {"SKILL.md": SKILL_MD.encode()})


def _bomb() -> bytes:
    return _zip({"SKILL.md": SKILL_MD.encode(), "zeros.bin": b"\0" * (30 * 1024 * 1024)})


def _overlapping() -> bytes:
    # Two central-directory entries that point at the same local file (the "overlap" bomb).
    one = _zip({"SKILL.md": SKILL_MD.encode()})
    with zipfile.ZipFile(io.BytesIO(one)) as archive:
        info = archive.infolist()[0]
    cd_start = one.rindex(b"PK\x01\x02")
    eocd = one.rindex(b"PK\x05\x06")
    entry = one[cd_start:eocd]
    twin = entry.replace(b"SKILL.md", b"SKILL.me")
    end = bytearray(one[eocd:])
    end[8:10] = (2).to_bytes(2, "little")
    end[10:12] = (2).to_bytes(2, "little")
    end[12:16] = (len(entry) * 2).to_bytes(4, "little")
    assert info.header_offset == 0
    return one[:cd_start] + entry + twin + bytes(end)


def _many_entries() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("SKILL.md", SKILL_MD)
        for i in range(100_000):
            archive.writestr(f"f{i}", b"")
    return buffer.getvalue()


def _non_utf8_name() -> bytes:
    # Swap the UTF-8 name for latin-1 bytes of the same length and clear the UTF-8 flag, as
    # old zip tools write it.
    payload = _zip({"SKILL.md": SKILL_MD.encode(), "caf\u00e9.txt": b"x"})
    out = bytearray(payload.replace("caf\u00e9.txt".encode(), b"caf\xe9x.txt"))
    for marker, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = out.find(marker)
        while pos != -1:
            flags = int.from_bytes(out[pos + flag_offset : pos + flag_offset + 2], "little")
            out[pos + flag_offset : pos + flag_offset + 2] = (flags & ~0x800).to_bytes(2, "little")
            pos = out.find(marker, pos + 4)
    return bytes(out)


@pytest.mark.parametrize(
    ("name", "payload", "status", "rule"),
    [
        (
            "zip slip",
            lambda: _zip({"SKILL.md": SKILL_MD.encode(), "../x": b"x"}),
            422,
            "path_traversal",
        ),
        (
            "nested slip",
            lambda: _zip({"SKILL.md": SKILL_MD.encode(), "a/../../x": b"x"}),
            422,
            "path_traversal",
        ),
        (
            "absolute",
            lambda: _zip({"SKILL.md": SKILL_MD.encode(), "/etc/x": b"x"}),
            422,
            "absolute_path",
        ),
        ("zip symlink", _symlink_zip, 422, "symlink"),
        ("tar symlink", lambda: _tar_with("symlink"), 422, "symlink"),
        ("tar hardlink", lambda: _tar_with("hardlink"), 422, "hardlink"),
        ("tar fifo", lambda: _tar_with("fifo"), 422, "special_file"),
        ("tar device", lambda: _tar_with("device"), 422, "special_file"),
        ("ratio bomb", _bomb, 413, None),
        ("overlapping entries", _overlapping, 422, "overlap"),
        ("100k entries", _many_entries, 422, "too_many_entries"),
        ("non-utf8 name", _non_utf8_name, 422, "bad_name"),
        ("not an archive", lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 100, 422, "not_an_archive"),
    ],
)
def test_hostile_bundles_are_rejected(tenant, tmp_path, name, payload, status, rule):
    before = sorted(p.name for p in tmp_path.iterdir())
    r = _upload(tenant, payload())
    assert r.status_code == status, (name, r.text)
    error = r.json()["error"]
    assert error["field"] == "bundle"
    if rule is not None:
        assert f"rule {rule}" in error["message"], error["message"]
    assert tenant.client.get(tenant.path("/skills")).json()["total"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing landed beside us


def test_upload_over_the_size_cap_is_refused(tenant, context):
    cap = context.settings.skill_bundle_max_bytes
    r = _upload(tenant, b"\0" * (cap + 200_000))
    assert r.status_code == 413
    assert "larger than" in r.json()["error"]["message"]
