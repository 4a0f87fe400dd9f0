"""`python -m actana.runtime.launch`: the first process of a container sandbox (under tini).

It starts before the container is given a run, loads the runtime (so that a container waiting in
a warm pool has already paid Python's start-up and the runtime's imports), then blocks on stdin
for the handover (`actana.protocol.handover`): the command, its exact environment, rlimits and
the workspace's input files. It writes the files, detaches stdin, applies the rlimits and runs
the command: the runtime in this very process, anything else through exec.

Nothing here prints to stdout: stdout belongs to the command's events.
"""

from __future__ import annotations

import os
import resource
import sys
import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from actana.protocol.handover import RUNTIME_ARGV, HandoverError, read_handover
from actana.runtime import main as runtime_main  # preloaded on purpose, see the docstring

EXIT_BAD_HANDOVER = 125
EXIT_NOT_FOUND = 127


def _safe_relative(name: str) -> PurePosixPath | None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or path == PurePosixPath("."):
        return None
    return path


def extract_files(stream: BinaryIO, workdir: str) -> int:
    """Write the tar stream's directories and regular files under `workdir`; return the count.

    The archive comes from the trusted side, but the rules stay strict anyway: no links, no
    devices, no path outside `workdir`, no setuid bits.
    """
    count = 0
    root = Path(workdir)
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            relative = _safe_relative(member.name)
            if relative is None:
                continue
            target = root.joinpath(*relative.parts)
            if member.isdir():
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                source = archive.extractfile(member)
                if source is None:
                    continue
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    while chunk := source.read(1 << 16):
                        out.write(chunk)
                target.chmod(member.mode & 0o777)
                count += 1
    # Whatever follows the end-of-archive blocks (tar pads to a record) is read and dropped, so
    # the writer's close is seen and no byte of it is left for the command.
    while stream.read(1 << 16):
        pass
    return count


def apply_rlimits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (value, value))


def _detach_stdin() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)


def main() -> int:
    stdin = sys.stdin.buffer
    try:
        handover = read_handover(stdin)
        Path(handover.workdir).mkdir(parents=True, exist_ok=True)
        extract_files(stdin, handover.workdir)
        os.chdir(handover.workdir)
        _detach_stdin()
        apply_rlimits(handover.rlimits)
    except (HandoverError, OSError, tarfile.TarError) as exc:
        sys.stderr.write(f"actana launch: bad handover: {exc}\n")
        return EXIT_BAD_HANDOVER
    if handover.argv == RUNTIME_ARGV:
        os.environ.clear()
        os.environ.update(handover.env)
        return runtime_main.main([])
    try:
        os.execvpe(handover.argv[0], handover.argv, handover.env)  # noqa: S606 (argv, no shell)
    except OSError as exc:
        sys.stderr.write(f"actana launch: cannot run {handover.argv[0]!r}: {exc}\n")
    return EXIT_NOT_FOUND


if __name__ == "__main__":
    sys.exit(main())
