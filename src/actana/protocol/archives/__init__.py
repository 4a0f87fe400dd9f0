"""Hostile-input-safe reading of zip and tar archives (plain, gzip, bzip2, xz), shared by the
server (uploaded skill bundles) and the sandbox's `archive` tool, so both refuse the same things.

Everything about an archive is attacker-controlled: names, types, declared sizes, offsets and
the compressed streams themselves. `read_archive` therefore validates all metadata before it
touches any file data, then decompresses in bounded chunks while counting the bytes it really
gets. The whole archive is rejected at the first broken rule; nothing is ever silently skipped
or repaired. Standard library only, like the rest of `actana.protocol`.

The rules and limits live in `rules`, the format readers in `zip_reader` and `tar_reader`.
"""

from __future__ import annotations

from actana.protocol.archives.rules import (
    PARSE_ERRORS,
    ArchiveLimits,
    ArchiveMember,
    ArchiveRejected,
    describe,
    normalise_name,
    printable,
)
from actana.protocol.archives.tar_reader import read_tar, tar_stream
from actana.protocol.archives.zip_reader import ZIP_MAGICS, read_zip

__all__ = [
    "ArchiveLimits",
    "ArchiveMember",
    "ArchiveRejected",
    "normalise_name",
    "printable",
    "read_archive",
]

_DEFAULT_LIMITS = ArchiveLimits()


def read_archive(
    data: bytes, limits: ArchiveLimits = _DEFAULT_LIMITS, directories: list[str] | None = None
) -> list[ArchiveMember]:
    """Read a zip or tar archive (plain, gzip, bzip2 or xz), checking every rule.

    The format is detected from the content's magic bytes, never from a file name.

    Args:
        data: the raw archive.
        limits: caps on entries, sizes, compression ratio and paths.
        directories: if given, the paths of the directory entries are added to it (in archive
            order), for a caller that recreates empty folders.

    Returns:
        The regular files, sorted by path.

    Raises:
        ArchiveRejected: at the first broken rule; its `rule` and `entry` say which and where.
    """
    try:
        if data.startswith(ZIP_MAGICS):
            members = read_zip(data, limits, directories)
        else:
            members = read_tar(tar_stream(data, limits), limits, directories)
    except ArchiveRejected:
        raise
    except PARSE_ERRORS as exc:
        raise ArchiveRejected(
            "not_an_archive", None, f"it could not be parsed ({printable(describe(exc))})"
        ) from exc
    return sorted(members, key=lambda member: member.path)
