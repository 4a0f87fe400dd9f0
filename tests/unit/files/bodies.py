"""Hand-built multipart/form-data bodies and the helpers the asset tests share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from actana.files.assets import AssetRejected, AssetRules, StoredAsset, receive_assets

BOUNDARY = "----actanaTestBoundary7MA4YWxkTrZu0gW"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def file_part(filename: str, content: bytes, *, name: str = "files") -> bytes:
    """One file part, as a browser sends it (raw UTF-8 in the quoted filename)."""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return head.encode("utf-8") + content + b"\r\n"


def field_part(name: str, value: bytes | str) -> bytes:
    """One plain (non-file) field part."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
    return head.encode("utf-8") + raw + b"\r\n"


def closing() -> bytes:
    """The closing boundary."""
    return f"--{BOUNDARY}--\r\n".encode()


def body(*parts: bytes) -> bytes:
    """A complete body made of `parts`."""
    return b"".join(parts) + closing()


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    """Yield `data` in chunks of `size` bytes, like a slow network would."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def receive(
    data: bytes,
    dest: Path,
    rules: AssetRules | None = None,
    *,
    chunk: int = 7,
    content_type: str = CONTENT_TYPE,
    **options: Any,
) -> tuple[list[StoredAsset], dict[str, str]]:
    """Run `receive_assets` on `data` fed in small chunks."""
    return asyncio.run(
        receive_assets(chunked(data, chunk), content_type, dest, rules or AssetRules(), **options)
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every entry of `folder` with its content (symlinks by their target)."""
    result: dict[str, bytes] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            result[entry.name] = b"-> " + str(entry.readlink()).encode()
        else:
            result[entry.name] = entry.read_bytes()
    return result


def expect_rejection(
    data: bytes | Iterable[bytes],
    dest: Path,
    rule: str,
    *,
    file: str | None,
    rules: AssetRules | None = None,
    content_type: str = CONTENT_TYPE,
    **options: Any,
) -> AssetRejected:
    """Assert that `data` is rejected by `rule`, naming `file`, leaving `dest` as it was."""
    before = snapshot(dest)
    raw = data if isinstance(data, bytes) else b"".join(data)
    try:
        receive(raw, dest, rules, content_type=content_type, **options)
    except AssetRejected as exc:
        error = exc
    else:  # pragma: no cover - only reached when the code under test is wrong
        raise AssertionError(f"expected rule {rule}, but the upload was accepted")
    assert error.rule == rule, str(error)
    assert f"rule {rule}" in str(error)
    if file is not None:
        assert error.file == file
        assert f"'{file}'" in str(error)
    assert snapshot(dest) == before, "the rejected upload left something behind"
    return error
