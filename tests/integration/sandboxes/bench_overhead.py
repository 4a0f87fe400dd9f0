"""Measure what a native sandbox costs over a bare `python -c pass` (numbers only, no asserts).

    .venv/bin/python -m tests.integration.sandboxes.bench_overhead [runs]

For each interpreter the sandbox can run: the median over `runs` of
- bare:          a plain subprocess, start -> exit;
- start->exit:   sandbox.start() -> wait() returns (what the run's execution phase pays);
- create->gone:  create() -> start -> exit -> remove() (the whole sandbox lifecycle).
Not collected by pytest (no test_ prefix): timings belong in reports, not in assertions.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

from actana.sandboxes import SandboxBackend, SandboxSpec, get_backend
from actana.sandboxes.native_state import unreachable_for


async def bare(python: str) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(python, "-c", "pass")
    await proc.wait()
    return time.perf_counter() - started


async def sandboxed(backend: SandboxBackend, python: str, i: int) -> tuple[float, float]:
    spec = SandboxSpec(
        run_id=f"bench-{i}", worker_id="bench", command=[python, "-c", "pass"], env={}
    )
    t0 = time.perf_counter()
    sandbox = await backend.create(spec)
    t1 = time.perf_counter()
    await sandbox.start()
    code = await sandbox.wait()
    t2 = time.perf_counter()
    await sandbox.remove()
    t3 = time.perf_counter()
    assert code == 0, await sandbox.stderr_tail()
    return t2 - t1, t3 - t0


async def main(runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="actana-bench-", dir="/tmp"))
    root.chmod(0o711)
    uid = 65534 if os.geteuid() == 0 else os.geteuid()
    pythons = [sys.executable, "/usr/bin/python3"]
    for use_bwrap in ("always", "never"):
        backend = get_backend("native", root_dir=root / use_bwrap, use_bwrap=use_bwrap)
        print(f"\n{backend.describe()['isolation']}")
        for python in pythons:
            if use_bwrap == "never" and unreachable_for(Path(python), uid, uid, os.X_OK):
                print(f"  {python}: not executable by uid {uid} without bwrap, skipped")
                continue
            await bare(python)  # warm the page cache
            base = statistics.median([await bare(python) for _ in range(runs)])
            timed = [await sandboxed(backend, python, i) for i in range(runs)]
            run = statistics.median(t[0] for t in timed)
            whole = statistics.median(t[1] for t in timed)
            print(
                f"  {python}: bare {base * 1000:.1f} ms | start->exit {run * 1000:.1f} ms "
                f"(+{(run - base) * 1000:.1f} ms, x{run / base:.2f}) | "
                f"create->gone {whole * 1000:.1f} ms (x{whole / base:.2f})"
            )
    shutil.rmtree(root)


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 20)
