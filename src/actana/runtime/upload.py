"""The `result_upload` phase: hand the files left in `assets/` back, in one request.

Only regular files are collected, found with `lstat` semantics: a symlink is never followed (a
link to `/etc/passwd` left in assets/ is skipped, not uploaded), and directories are walked
without following links to them. FIFOs, sockets and devices are skipped. The server enforces the
real limits (count, sizes, extensions, names); the cap here only bounds the request.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from actana.runtime.channel import RESULTS_PATH, Channel, ChannelError
from actana.runtime.emit import Emitter, PhaseReport, describe

MAX_UPLOAD_FILES = 100
# Stop counting (for the "N more" message) in absurdly big trees instead of walking them all.
_MAX_COUNTED = 100_000


def collect_files(assets: Path, limit: int) -> tuple[list[tuple[str, Path]], int]:
    """Regular files under `assets`, sorted by name, at most `limit` of them.

    Args:
        assets: the directory to collect from; if it is itself a symlink, nothing is collected.
        limit: most files returned.

    Returns:
        ((name relative to `assets` with '/' separators, path) pairs, how many files there are
        in all, counted up to a large bound).
    """
    try:
        if not stat.S_ISDIR(os.lstat(assets).st_mode):
            return [], 0
    except FileNotFoundError:
        return [], 0
    found: list[tuple[str, Path]] = []
    total = 0
    stack = [(assets, "")]
    while stack and total < _MAX_COUNTED:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            name = prefix + entry.name
            # DirEntry's is_* with follow_symlinks=False answer from lstat data: never a link.
            if entry.is_dir(follow_symlinks=False):
                subdirs.append((Path(entry.path), name + "/"))
            elif entry.is_file(follow_symlinks=False):
                total += 1
                if len(found) < limit:
                    found.append((name, Path(entry.path)))
        stack.extend(reversed(subdirs))  # popped in name order
    found.sort()
    return found, total


def upload_outputs(
    channel: Channel, token: str, assets: Path, emitter: Emitter, report: PhaseReport
) -> None:
    """Upload what is in `assets/` with OTP_UPLOAD, filling in the phase's report.

    A failed upload is a warning, not a failed run: the run's outcome stays what it was.
    """
    files, total = collect_files(assets, MAX_UPLOAD_FILES)
    if total > len(files):
        emitter.log("warn", f"{total} files in assets/; only the first {len(files)} are uploaded")
    if not files:
        report.message = "result upload: no output files"
        return
    try:
        channel.post_files(RESULTS_PATH, token, files)
    except (ChannelError, OSError) as exc:
        detail = str(exc) if isinstance(exc, ChannelError) else describe(exc)
        emitter.log("warn", f"the output files could not be uploaded: {detail}")
        report.message, report.outcome, report.level = "result upload failed", "error", "warn"
        return
    names = ", ".join(name for name, _ in files[:20])
    more = f" and {len(files) - 20} more" if len(files) > 20 else ""
    report.message = f"result upload done: {len(files)} file(s): {names}{more}"
