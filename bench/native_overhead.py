"""Native run overhead, end to end, as a user sees it (DESIGN.md section 7, issue 3 "Measure").

A real server (uvicorn, two in-process workers, SQLite in a temp data dir, a fresh master key) in
a background thread; each sample is a one-turn scripted native run, from `POST .../runs` to the
terminal line of `GET runs/{run}/events`, next to a bare `python -c pass` (the baseline) and
references (runtime imports; bare native sandboxes), interleaved so all see the same load.
Breakdown from each run's stream: phase `durationMs`, and a timeline cut at the lines' `ts`.

    .venv/bin/python bench/native_overhead.py [--runs N] [--warmup W] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

from actana.api.app import create_app
from actana.api.context import AppContext
from actana.bootstrap import build_context
from actana.crew.workspaces import create_workspace
from actana.protocol.events import PHASES
from actana.runs.backends import native_backend
from actana.sandboxes import SandboxBackend, SandboxSpec
from actana.security.keyring import generate_master_key
from actana.settings import Settings

SCRIPT = [{"text": "done"}]
BASELINE = [sys.executable, "-c", "pass"]
BASELINE_LABEL = "python -c pass (baseline)"
# What the sandbox's interpreter imports before its first line (the driver runs `-I -m`).
RUNTIME_IMPORT = [sys.executable, "-I", "-c", "import actana.runtime.main"]
SEGMENTS = (  # in order; they add up to the total (see `segments`)
    "claim",  # POST sent -> provisioning starts (request, commit, wake-up, claim)
    "worker phases",  # provisioning start -> container_creation line
    "sandbox start",  # container_creation line -> bootstrap starts (exec chain, imports)
    "runtime phases",  # bootstrap start -> result_upload line
    "sandbox exit",  # result_upload line -> cleanup starts (terminal line, exit, wait)
    "cleanup",
    "finish",  # cleanup line -> terminal line stored (run row, result.json, fsync)
    "delivery",  # terminal line stored -> received by the client
)


@dataclass
class Sample:  # one measured run, in ms
    total_ms: float
    post_ms: float
    first_event_ms: float
    isolation: str
    phases: dict[str, int]
    segments: dict[str, float]


class Server:
    """The app with workers on a loopback port, served by uvicorn in a background thread."""

    def __init__(self, context: AppContext, workers: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        app = create_app(context, workers=workers)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server failed to start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@contextmanager
def serving(bwrap: str) -> Iterator[tuple[httpx.Client, str, Settings]]:
    """Server on a fresh data dir; yields a workspace client, the agent id, the settings."""
    for name in list(os.environ):  # nothing of the developer's configuration leaks in
        if name.startswith("ACTANA_") or name == "MAX_EXECUTION_TIME_SEC":
            del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="actana-bench-") as tmp:
        data = Path(tmp) / "data"
        key = SecretStr(generate_master_key())
        settings = Settings(_env_file=None, data_dir=data, master_key=key, native_bwrap=bwrap,
                            database_url=f"sqlite:///{data / 'actana.db'}")  # fmt: skip
        context = build_context(settings)
        try:
            with context.database.session() as session:
                workspace, api_key = create_workspace(session, "bench", actor="bench")
                base = f"/api/v1/workspaces/{workspace.id}"
            auth = {"Authorization": f"Bearer {api_key}"}
            with (
                Server(context, workers=2) as server,
                httpx.Client(base_url=server.url + base, headers=auth, timeout=60) as client,
            ):
                endpoint = {"name": "script", "provider": "scripted", "script": SCRIPT}
                ep = client.post("/model-endpoints", json=endpoint).raise_for_status()
                agent = {"name": "bench", "model_endpoint_id": ep.json()["id"]}
                made = client.post("/agents", json={**agent, "sandbox_flavor": "native"})
                yield client, str(made.raise_for_status().json()["id"]), settings
        finally:
            context.database.dispose()


def segments(lines: list[dict[str, Any]], posted_ms: float, received_ms: float) -> dict[str, float]:
    """Cut POST -> terminal line received at the phase lines' `ts` (a phase line is written
    when its phase ends: the phase started at `ts - durationMs`)."""
    at = {ln["phase"]: ln for ln in lines if ln["type"] == "log" and ln.get("phase")}

    def end(phase: str) -> float:
        return float(at[phase]["ts"])

    def start(phase: str) -> float:
        return end(phase) - float(at[phase]["durationMs"])

    points = [posted_ms, start("provisioning"), end("container_creation"), start("bootstrap"),
              end("result_upload"), start("cleanup"), end("cleanup"), float(lines[-1]["ts"]),
              received_ms]  # fmt: skip
    return {name: points[i + 1] - points[i] for i, name in enumerate(SEGMENTS)}


def measure_run(client: httpx.Client, agent: str) -> Sample:
    """One run: POST it, then follow its events (NDJSON) to the terminal line."""
    posted_ms = time.time_ns() / 1e6
    t0 = time.perf_counter()
    created = client.post(f"/agents/{agent}/runs", json={"prompt": "go"})
    post_ms = (time.perf_counter() - t0) * 1000
    run_id = created.raise_for_status().json()["id"]
    lines: list[dict[str, Any]] = []
    first = last = received = 0.0
    with client.stream("GET", f"/runs/{run_id}/events") as response:
        for raw in response.raise_for_status().iter_lines():
            if raw:
                now = time.perf_counter()
                first = first or now
                lines.append(json.loads(raw))
                if lines[-1]["type"] in ("result", "error"):
                    last, received = now, time.time_ns() / 1e6
    if not last or lines[-1]["type"] not in ("result", "error"):
        raise RuntimeError(f"run {run_id}: the stream ended without a terminal line")
    run = client.get(f"/runs/{run_id}").json()
    if run["status"] != "succeeded":
        raise RuntimeError(f"run {run_id} ended {run['status']}: {lines[-1]}")
    phases = {ln["phase"]: int(ln["durationMs"]) for ln in lines if ln.get("phase")}
    if sorted(phases) != sorted(PHASES):
        raise RuntimeError(f"run {run_id}: phase lines {sorted(phases)}, expected the nine")
    cut = segments(lines, posted_ms, received)
    total, first_ms = (last - t0) * 1000, (first - t0) * 1000
    return Sample(total, post_ms, first_ms, str(run.get("isolation")), phases, cut)


def time_command(argv: list[str]) -> float:
    """Wall time (ms) of `subprocess.run(argv)`."""
    t0 = time.perf_counter()
    subprocess.run(argv, check=True)
    return (time.perf_counter() - t0) * 1000


async def time_sandbox(backend: SandboxBackend, argv: list[str]) -> float:
    """Wall time (ms) of a bare native sandbox running `argv`: create, start, wait, remove."""
    spec = SandboxSpec(run_id=f"bench-{os.urandom(6).hex()}", worker_id="b", command=argv, env={})
    t0 = time.perf_counter()
    sandbox = await backend.create(spec)
    try:
        await sandbox.start()
        code = await sandbox.wait(timeout=60)
    finally:
        await sandbox.remove()
    if code != 0:
        raise RuntimeError(f"{argv} exited {code} in the sandbox")
    return (time.perf_counter() - t0) * 1000


def stats(values: list[float]) -> dict[str, float]:
    """Median, nearest-rank p95 and min, rounded to 0.01 ms."""
    ordered = sorted(values)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {k: round(v, 2) for k, v in (("median", statistics.median(ordered)), ("p95", p95),
                                        ("min", ordered[0]))}  # fmt: skip


def report(
    samples: list[Sample], refs: dict[str, list[float]], loads: list[float]
) -> dict[str, Any]:
    """Every number of the benchmark, for the table and for --json."""
    total, base = stats([s.total_ms for s in samples]), stats(refs[BASELINE_LABEL])
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "executable": sys.executable,
                    "loadavg_1min_before_after": loads},
        "runs": len(samples),
        "isolation": sorted({re.sub(r"\+uid\(\d+\)", "+uid(pool)", s.isolation) for s in samples}),
        "overhead_ms": total,
        "baseline_ms": base,
        "ratio_median": round(total["median"] / base["median"], 2),
        "ratio_p95": round(total["p95"] / base["p95"], 2),
        "references_ms": {label: stats(times) for label, times in refs.items()},
        "post_ms": stats([s.post_ms for s in samples]),
        "first_event_ms": stats([s.first_event_ms for s in samples]),
        "phases_ms": {p: stats([float(s.phases[p]) for s in samples]) for p in PHASES},
        "segments_ms": {g: stats([s.segments[g] for s in samples]) for g in SEGMENTS},
        "samples": [asdict(s) for s in samples],
    }  # fmt: skip


def print_table(numbers: dict[str, Any]) -> None:
    def row(label: str, v: dict[str, float]) -> None:
        print(f"  {label:<40}{v['median']:>8.1f}{v['p95']:>8.1f}{v['min']:>8.1f}")

    machine = numbers["machine"]
    print(f"native run overhead: {numbers['runs']} runs, {numbers['date']}")
    print(f"  {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}, "
          f"load {machine['loadavg_1min_before_after']}")  # fmt: skip
    print(f"  isolation: {', '.join(numbers['isolation'])}")
    print(f"\n  {'ms':<40}{'median':>8}{'p95':>8}{'min':>8}")
    row("POST -> terminal line (overhead)", numbers["overhead_ms"])
    for label, v in numbers["references_ms"].items():
        row(label, v)
    print(f"  ratio overhead / {BASELINE_LABEL}: {numbers['ratio_median']} (median), "
          f"{numbers['ratio_p95']} (p95)")  # fmt: skip
    row("POST answered (202)", numbers["post_ms"])
    row("POST -> first event line", numbers["first_event_ms"])
    for key, title in (
        ("phases_ms", "phase lines' durationMs"),
        ("segments_ms", "timeline from the lines' ts (adds up to the total)"),
    ):
        print(f"\n  {title}")
        for name, v in numbers[key].items():
            row(name, v)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Native run overhead (see the module doc).")
    parser.add_argument("--runs", type=int, default=30, help="measured runs (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="discarded runs first (default 3)")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--bwrap", choices=("auto", "always", "never"), default="auto")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    samples: list[Sample] = []
    with serving(args.bwrap) as (client, agent, settings), asyncio.Runner() as loop:
        # Own sandboxes dir: the workers' reaper removes sandboxes that belong to no run.
        backend = native_backend(
            settings.model_copy(update={"data_dir": settings.data_dir.parent / "refs"})
        )
        probes: dict[str, Callable[[], float]] = {
            BASELINE_LABEL: lambda: time_command(BASELINE),
            "python -I import runtime (host)": lambda: time_command(RUNTIME_IMPORT),
            "sandbox: python -c pass": lambda: loop.run(time_sandbox(backend, BASELINE)),
            "sandbox: import runtime": lambda: loop.run(time_sandbox(backend, RUNTIME_IMPORT)),
        }
        refs: dict[str, list[float]] = {label: [] for label in probes}
        loads = [round(os.getloadavg()[0], 2)]
        for i in range(args.warmup + args.runs):  # interleaved: all see the same machine load
            times = {label: probe() for label, probe in probes.items()}
            sample = measure_run(client, agent)
            if i >= args.warmup:
                samples.append(sample)
                for label, ms in times.items():
                    refs[label].append(ms)
        loads.append(round(os.getloadavg()[0], 2))
    numbers = report(samples, refs, loads)
    print_table(numbers)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
