"""Skills on the trusted side: what the run config lists, and bundles written for the sandbox.

A multi-file bundle is written, before the sandbox starts, into `skills/<name>/` of the run
channel's directory, which every backend shows the sandbox read-only. Every file is checked
against the sha256 recorded at upload: a file whose bytes differ (tampered in the database or in
the worker's cache) refuses the whole skill, which is then simply absent from the sandbox (the
runtime leaves out a bundle whose folder is missing, see `actana.runtime.skills`). Single-file
skills need nothing written: their body travels in the config.

Bundles are cached on the worker per (workspace, skill, content hash), so a run does not reload
them from the database. A cache entry is only ever a copy: every use re-verifies it, a bad one
is evicted and rebuilt from the database, and entries are built in a temporary folder and renamed
into place, so concurrent runs see a whole entry or none.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from actana.db.models import Agent, AgentSkill, Skill, SkillFile
from actana.protocol.payloads import CHANNEL_SKILLS_DIR, SkillFileSpec, SkillSpec
from actana.sandboxes.channel_dir import remove_tree

log = logging.getLogger(__name__)

FILE_MODE = 0o444
EXEC_MODE = 0o555
RUN_DIR_MODE = 0o555  # the sandbox may list and enter a skill's folders, never change them
CACHE_DIR_MODE = 0o700  # the cache is the worker's own
CACHE_DIR = "skill-cache"
# Ids and hashes become path components of the cache: only plain characters, never `..`.
_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# Same rule as crew.skills: the name is the folder the sandbox sees.
_SKILL_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-))*(?<!-)$")
_CHUNK = 1 << 16


class SkillRefused(Exception):
    """A bundle cannot be handed to the sandbox; the message says which file and why."""


@dataclass(frozen=True)
class Bundle:
    """One multi-file skill to materialise, as recorded in the database."""

    workspace_id: str
    skill_id: str
    name: str
    content_hash: str
    files: tuple[SkillFileSpec, ...]


Loader = Callable[[], dict[str, bytes]]
"""Reads a bundle's file contents (path -> bytes) from the database, only on a cache miss."""


def _attached(session: Session, agent: Agent) -> list[Skill]:
    rows = session.execute(
        select(Skill)
        .join(AgentSkill, AgentSkill.skill_id == Skill.id)
        .where(AgentSkill.agent_id == agent.id, Skill.workspace_id == agent.workspace_id)
        .order_by(AgentSkill.position, Skill.name)
    )
    return list(rows.scalars())


def _file_specs(row: Skill) -> list[SkillFileSpec]:
    return [SkillFileSpec(f.path, f.size, f.sha256, f.executable) for f in row.files]


def skill_specs(session: Session, agent: Agent) -> list[SkillSpec]:
    """The skills attached to `agent`, in the agent's order, as the run config lists them."""
    return [
        SkillSpec(row.name, row.description, row.skill_md, row.content_hash, _file_specs(row))
        for row in _attached(session, agent)
    ]


def check_relative_path(path: str) -> list[str]:
    """The components of a bundle path, checked again although the upload checked them.

    Raises:
        SkillRefused: an absolute path, an empty, `.` or `..` component, a backslash or a NUL.
    """
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\0" in path
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise SkillRefused(f"file {path[:200]!r} has an unsafe path")
    return parts


def _check_names(bundle: Bundle) -> None:
    if not _SKILL_NAME.match(bundle.name) or len(bundle.name) > 64:
        raise SkillRefused(f"the skill name {bundle.name[:80]!r} cannot be a folder name")
    for value in (bundle.workspace_id, bundle.skill_id, bundle.content_hash):
        if not _SAFE_COMPONENT.match(value):
            raise SkillRefused(f"unexpected characters in id or hash {value[:80]!r}")
    for spec in bundle.files:
        check_relative_path(spec.path)


def _verify(spec: SkillFileSpec, data: bytes, where: str) -> None:
    if len(data) != spec.size or hashlib.sha256(data).hexdigest() != spec.sha256:
        raise SkillRefused(f"file {spec.path!r} does not match its recorded sha256 ({where})")


def write_tree(
    target: Path, files: Iterable[SkillFileSpec], data: dict[str, bytes], dir_mode: int
) -> None:
    """Write `files` under the fresh, empty folder `target` (which only this process writes).

    Regular files only, created exclusively and never through a link: 0444, or 0555 for
    executables. Folders get `dir_mode` at the end, once nothing more is written into them.
    """
    made: set[Path] = set()
    for spec in files:
        parts = check_relative_path(spec.path)
        folder = target
        for part in parts[:-1]:
            folder = folder / part
            if folder not in made:
                folder.mkdir(0o700)  # fails if a file of the bundle already has this name
                made.add(folder)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(folder / parts[-1], flags, 0o600)
        try:
            view = memoryview(data[spec.path])
            while view:
                view = view[os.write(fd, view[:_CHUNK]) :]
            os.fchmod(fd, EXEC_MODE if spec.executable else FILE_MODE)
        finally:
            os.close(fd)
    for folder in sorted(made, key=lambda p: len(p.parts), reverse=True):
        folder.chmod(dir_mode)
    target.chmod(dir_mode)


def _read_verified(entry: Path, files: Iterable[SkillFileSpec]) -> dict[str, bytes]:
    """A cache entry's files, each verified; SkillRefused on any difference or oddity."""
    data: dict[str, bytes] = {}
    for spec in files:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(entry / spec.path, flags)
        except OSError as exc:
            raise SkillRefused(
                f"file {spec.path!r} unreadable in the cache: {exc.strerror}"
            ) from None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise SkillRefused(f"file {spec.path!r} is not a regular file in the cache")
            content = handle.read(spec.size + 1)
        _verify(spec, content, "worker cache")
        data[spec.path] = content
    return data


class SkillCache:
    """Verified copies of bundles under `<root>/<workspace>/<skill id>-<content hash>/`."""

    def __init__(self, root: Path) -> None:
        """Keep the cache in `root` (made on first use, private to the worker)."""
        self.root = root

    def entry(self, bundle: Bundle) -> Path:
        return self.root / bundle.workspace_id / f"{bundle.skill_id}-{bundle.content_hash}"

    def fetch(self, bundle: Bundle, load: Loader) -> tuple[dict[str, bytes], str | None]:
        """The bundle's verified contents, from the cache or else from `load()`.

        Returns:
            (contents by path, a note when a cache entry was found bad and evicted).

        Raises:
            SkillRefused: the database's own copy does not match the recorded hashes.
        """
        _check_names(bundle)
        entry = self.entry(bundle)
        note = None
        if entry.is_dir() and not entry.is_symlink():
            try:
                return _read_verified(entry, bundle.files), None
            except SkillRefused as exc:
                note = f"skill {bundle.name!r}: the cached copy was evicted ({exc}); reloaded"
                self._evict(entry)
        data = load()
        for spec in bundle.files:
            if spec.path not in data:
                raise SkillRefused(f"file {spec.path!r} is missing from the database")
            _verify(spec, data[spec.path], "database")
        self._store(bundle, data)
        return data, note

    def _store(self, bundle: Bundle, data: dict[str, bytes]) -> None:
        """Keep a verified copy; a cache that cannot be written only costs the next run a
        database read, so the failure is logged, not raised."""
        try:
            folder = self.root / bundle.workspace_id
            folder.mkdir(parents=True, exist_ok=True, mode=CACHE_DIR_MODE)
            self.root.chmod(CACHE_DIR_MODE)
            temp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
        except OSError as exc:
            log.warning("skill cache %s not writable: %s", self.root, exc)
            return
        try:
            write_tree(temp, bundle.files, data, CACHE_DIR_MODE)
            temp.rename(self.entry(bundle))  # atomic; fails if another run got there first
        except OSError:
            remove_tree(temp, ignore_errors=True)
            return
        self._prune(bundle)

    def _prune(self, bundle: Bundle) -> None:
        """Drop the entries of the skill's older versions (another run may still read one: it
        then finds it gone and reloads from the database)."""
        keep = self.entry(bundle).name
        for entry in (self.root / bundle.workspace_id).glob(f"{bundle.skill_id}-*"):
            if entry.name != keep:
                self._evict(entry)

    def _evict(self, entry: Path) -> None:
        # Renamed away first, so that no run starts reading a half-deleted entry.
        trash = entry.with_name(f".trash-{os.urandom(6).hex()}")
        try:
            entry.rename(trash)
        except OSError:
            return  # already gone (evicted by a concurrent run)
        remove_tree(trash, ignore_errors=True)


def cache_for(data_dir: Path) -> SkillCache:
    """The worker's skill cache, under the deployment's data dir."""
    return SkillCache(data_dir / CACHE_DIR)


def _bundle(row: Skill) -> Bundle:
    return Bundle(row.workspace_id, row.id, row.name, row.content_hash, tuple(_file_specs(row)))


def _loader(session: Session, skill_id: str) -> Loader:
    def load() -> dict[str, bytes]:
        rows = session.execute(
            select(SkillFile)
            .options(undefer(SkillFile.content))
            .where(SkillFile.skill_id == skill_id)
        )
        return {f.path: bytes(f.content) for f in rows.scalars()}

    return load


def _place(skills_dir: Path, bundle: Bundle, data: dict[str, bytes]) -> None:
    """Write one bundle into the run's skills folder, whole or not at all."""
    temp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=skills_dir))
    try:
        write_tree(temp, bundle.files, data, RUN_DIR_MODE)
        temp.rename(skills_dir / bundle.name)
    except OSError as exc:
        remove_tree(temp, ignore_errors=True)
        raise SkillRefused(f"its files could not be written: {exc.strerror or exc}") from None


def materialise_skills(
    session: Session, agent: Agent, channel_dir: Path, cache: SkillCache
) -> list[tuple[str, str]]:
    """Write the bundles of `agent`'s skills into `<channel_dir>/skills/<name>/`.

    A refused bundle (a file not matching its recorded sha256, an unsafe path) is left out;
    the others are written whole. Call it before the sandbox starts: the folder is read-only
    once handed over.

    Returns:
        (level, message) log lines for the run's stream: one error per refused skill, a warning
        per cache entry evicted.
    """
    bundles = [_bundle(row) for row in _attached(session, agent) if row.files]
    if not bundles:
        return []
    skills_dir = channel_dir / CHANNEL_SKILLS_DIR
    skills_dir.mkdir(mode=0o700)
    lines: list[tuple[str, str]] = []
    written: list[str] = []
    for bundle in bundles:
        try:
            data, note = cache.fetch(bundle, _loader(session, bundle.skill_id))
            if note:
                lines.append(("warn", note))
            _place(skills_dir, bundle, data)
            written.append(bundle.name)
        except SkillRefused as exc:
            log.warning("skill %s (%s) refused: %s", bundle.name, bundle.skill_id, exc)
            lines.append(("error", f"skill {bundle.name!r} refused, left out of the run: {exc}"))
    skills_dir.chmod(RUN_DIR_MODE)
    return lines
