"""What writing a skill bundle into a run costs (DESIGN.md section 7, issue 6 "Measure").

A SQLite database in a temp data dir (`build_context`, as a worker has it) holds one workspace,
one agent and one multi-file skill, uploaded as a zip through `crew.skills.create_from_bundle`:
`--files` files (SKILL.md included; random bytes, spread over 10 folders, every tenth file
executable) adding up to `--mb` MB. Each sample calls the worker's own
`runs.skills.materialise_skills(session, agent, channel_dir, cache)` on a fresh channel folder:

- `cold cache`: an empty cache folder (first use on a worker): the bundle is read from the
  database, every file checked against its sha256, a copy kept in the cache, then written into
  `<channel>/skills/<name>/`;
- `warm cache`: the cache already holds the bundle: every cached file is read and checked again,
  then written into the channel folder.

Baseline: `shutil.copytree` of the same files (a plain tree on disk next to the others) into a
fresh folder, in the same process and loop iteration. A reference row hashes the bundle's bytes
(sha256, in memory), which both cache paths do once per use. Every sample opens its own database
session (what a run does), so nothing comes from SQLAlchemy's identity map. The order of the
three rotates every iteration.

    .venv/bin/python bench/skill_materialise.py [--files 200] [--mb 5] [--runs 30] [--json out]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from native_overhead import stats
from pydantic import SecretStr

from actana.bootstrap import build_context
from actana.crew import skills as crew_skills
from actana.db.models import Agent, AgentSkill, ModelEndpoint, Workspace, new_id
from actana.files.archive import ArchiveLimits
from actana.runs.skills import SkillCache, materialise_skills, remove_tree
from actana.security.keyring import generate_master_key
from actana.settings import Settings

KINDS = ("copytree (baseline)", "materialise, cold cache", "materialise, warm cache")
HASH = "sha256 of the bundle's bytes (reference)"


def bundle_files(count: int, total: int) -> dict[str, tuple[bytes, bool]]:
    """path -> (bytes, executable): SKILL.md plus `count - 1` random files, `total` bytes."""
    skill_md = b"---\nname: bench\ndescription: a big bundle\n---\nUse the files.\n"
    files = {"SKILL.md": (skill_md, False)}
    each = max(1, (total - len(skill_md)) // (count - 1))
    for i in range(count - 1):
        files[f"part{i % 10}/file{i:04d}.bin"] = (os.urandom(each), i % 10 == 0)
    return files


def zipped(files: dict[str, tuple[bytes, bool]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path, (data, executable) in files.items():
            info = zipfile.ZipInfo(path)
            info.external_attr = (0o100000 | (0o755 if executable else 0o644)) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Skill materialisation (see the module doc).")
    parser.add_argument("--files", type=int, default=200, help="files in the bundle (200)")
    parser.add_argument("--mb", type=float, default=5.0, help="MB in the bundle (5)")
    parser.add_argument("--runs", type=int, default=30, help="samples of each (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="discarded iterations (3)")
    parser.add_argument("--tmp", type=Path, help="where to put it all (default: the temp dir)")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args(argv)
    if args.files < 2 or args.mb <= 0 or args.runs < 1 or args.warmup < 0:
        parser.error("--files >= 2, --mb > 0, --runs >= 1, --warmup >= 0")
    files = bundle_files(args.files, int(args.mb * 1024 * 1024))
    size = sum(len(data) for data, _ in files.values())
    with tempfile.TemporaryDirectory(prefix="actana-skill-bench-", dir=args.tmp) as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        settings = Settings(
            _env_file=None,
            data_dir=data_dir,
            master_key=SecretStr(generate_master_key()),
            database_url=f"sqlite:///{data_dir / 'actana.db'}",
        )
        context = build_context(settings)
        try:
            agent_id = setup(context, files)
            source = root / "source"  # the same files as a plain tree, for copytree
            for path, (data, executable) in files.items():
                (source / path).parent.mkdir(parents=True, exist_ok=True)
                (source / path).write_bytes(data)
                (source / path).chmod(0o755 if executable else 0o644)
            warm = SkillCache(root / "warm-cache")
            counter = iter(range(1 << 30))

            def fresh() -> Path:
                return root / f"scratch-{next(counter)}"

            def materialise(cache: SkillCache) -> float:
                channel = fresh()
                channel.mkdir()
                with context.database.session() as session:
                    agent = session.get(Agent, agent_id)
                    assert agent is not None
                    t0 = time.perf_counter()
                    lines = materialise_skills(session, agent, channel, cache)
                    elapsed = (time.perf_counter() - t0) * 1000
                check(channel / "skills" / "bench", files, lines)
                remove_tree(channel)
                return elapsed

            def cold() -> float:
                cache = SkillCache(fresh())
                elapsed = materialise(cache)
                remove_tree(cache.root)
                return elapsed

            def copytree() -> float:
                target = fresh()
                t0 = time.perf_counter()
                shutil.copytree(source, target)
                elapsed = (time.perf_counter() - t0) * 1000
                shutil.rmtree(target)
                return elapsed

            def hashing() -> float:
                t0 = time.perf_counter()
                for data, _ in files.values():
                    hashlib.sha256(data).hexdigest()
                return (time.perf_counter() - t0) * 1000

            probes: dict[str, Callable[[], float]] = dict(
                zip(KINDS, (copytree, cold, lambda: materialise(warm)), strict=True)
            )
            times: dict[str, list[float]] = {k: [] for k in (*KINDS, HASH)}
            loads = [round(os.getloadavg()[0], 2)]
            for i in range(args.warmup + args.runs):
                got = {KINDS[(i + k) % 3]: probes[KINDS[(i + k) % 3]]() for k in range(3)}
                got[HASH] = hashing()
                if i >= args.warmup:
                    for kind, ms in got.items():
                        times[kind].append(ms)
            loads.append(round(os.getloadavg()[0], 2))
        finally:
            context.database.dispose()
    base = stats(times[KINDS[0]])
    numbers: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "loadavg_1min_before_after": loads,
                    "tmpdir": str(args.tmp or tempfile.gettempdir())},
        "bundle": {"files": len(files), "bytes": size}, "runs": args.runs,
        "ms": {kind: stats(v) for kind, v in times.items()},
        "samples": times,
    }  # fmt: skip
    numbers["ratio"] = {
        kind: {q: round(numbers["ms"][kind][q] / base[q], 2) for q in ("median", "p95")}
        for kind in times
    }
    print_table(numbers)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def setup(context: Any, files: dict[str, tuple[bytes, bool]]) -> str:
    """A workspace, an agent, and the bundle attached to it; the agent's id."""
    total = sum(len(data) for data, _ in files.values())
    limits = ArchiveLimits(
        max_entries=len(files) + 100, max_total_bytes=total + 1, max_file_bytes=total + 1
    )
    with context.database.session() as session:
        workspace = Workspace(id=new_id("ws"), name="skills-bench")
        session.add(workspace)
        session.flush()
        endpoint = ModelEndpoint(
            id=new_id("me"), workspace_id=workspace.id, name="m", provider="scripted", model="s"
        )
        session.add(endpoint)
        session.flush()
        skill = crew_skills.create_from_bundle(
            session, workspace.id, zipped(files), limits, name=None, description=None
        )
        agent = Agent(
            id=new_id("ag"), workspace_id=workspace.id, name="a", model_endpoint_id=endpoint.id
        )
        session.add(agent)
        session.flush()
        agent.skill_links = [AgentSkill(skill_id=skill.id, position=0)]
        session.flush()
        return str(agent.id)


def check(folder: Path, files: dict[str, tuple[bytes, bool]], lines: list[Any]) -> None:
    """The bundle arrived whole and nothing was logged."""
    if lines:
        raise RuntimeError(f"materialise_skills logged {lines}")
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    if written != sorted(files):
        raise RuntimeError(f"{len(written)} files written, expected {len(files)}")
    sample = next(iter(sorted(files)))
    if (folder / sample).read_bytes() != files[sample][0]:
        raise RuntimeError(f"{sample} differs")


def print_table(n: dict[str, Any]) -> None:
    m, b = n["machine"], n["bundle"]
    mib = b["bytes"] / 1024 / 1024
    print(f"skill materialisation: {b['files']} files, {b['bytes'] / 1e6:.2f} MB "
          f"({mib:.2f} MiB), {n['runs']} samples each, {n['date']}")  # fmt: skip
    print(f"  {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, "
          f"load {m['loadavg_1min_before_after']}, temp dir {m['tmpdir']}")  # fmt: skip
    print(f"\n  {'ms':<44}{'median':>9}{'p95':>9}{'min':>9}{'ratio':>8}{'(p95)':>8}")
    for kind, v in n["ms"].items():
        r = n["ratio"][kind]
        print(f"  {kind:<44}{v['median']:>9.2f}{v['p95']:>9.2f}{v['min']:>9.2f}"
              f"{r['median']:>8.2f}{r['p95']:>8.2f}")  # fmt: skip
    print(f"  ratios are to {KINDS[0]}")


if __name__ == "__main__":
    sys.exit(main())
