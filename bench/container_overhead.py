"""Container run overhead, end to end, as a user sees it (issue 4 "Measure").

A real server (uvicorn, two in-process workers, SQLite in a temp data dir, a fresh master key) in
a background thread; each sample is a one-turn scripted run of the `container` flavor, from
`POST .../runs` to the terminal line of `GET runs/{run}/events`, next to a bare
`docker run --rm IMAGE python3 -c pass` (the baseline: the docker CLI as a subprocess, same
image) and a bare sandbox of the docker backend, interleaved so that all see the same machine.
Breakdown from each run's stream: phase `durationMs`, and a timeline cut at the lines' `ts`;
and from inside the server (its workers are in this process): the wall time of the Docker calls
and of the steps around them during each run (`_common.Tracer`; off with `--no-trace`).

With `--warm-pool N` the server keeps N containers ready (`container_warm_pool`). Each iteration
then waits until the pool is refilled, measures one run ("pool refilled") and at once a second
one ("back-to-back", while the pool refills).

    .venv/bin/python bench/container_overhead.py [--runs N] [--warmup W] [--warm-pool N]
                                                 [--json out.json] [--no-trace]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    Served,
    Tracer,
    docker_api,
    ensure_docker,
    machine,
    now_iso,
    remove_containers,
    serving,
    wait_running,
)
from native_overhead import SEGMENTS, Sample, measure_run, stats, time_command

from actana.protocol.events import PHASES
from actana.runs.backends import docker_backend
from actana.sandboxes import SandboxBackend, SandboxSpec
from actana.settings import Settings

IMAGE = Settings(_env_file=None).sandbox_image
BASELINE_LABEL = "docker run --rm IMAGE python3 -c pass (baseline)"
SANDBOX_LABEL = "docker backend: sandbox python3 -c pass"
SANDBOX_STEPS = ("create", "start (attach + start)", "to exit", "remove")
COLD, REFILLED, BACK_TO_BACK = "cold", "pool refilled", "back-to-back"
ADOPT, COLD_CREATE = "  adopt a warm container", "  create a cold container"  # Tracer labels
WARM = "got a warm container"
EXIT_SPLIT = (
    "sandbox exit: result_upload line -> terminal line in",
    "sandbox exit: terminal line in -> stdout EOF",
    "sandbox exit: stdout EOF -> cleanup start",
)


@dataclass
class Series:
    """The runs measured in one condition (cold, pool refilled, back-to-back)."""

    samples: list[Sample] = field(default_factory=list)
    traces: list[dict[str, float]] = field(default_factory=list)


def baseline_argv(image: str) -> list[str]:
    return ["docker", "run", "--rm", image, "python3", "-c", "pass"]


async def time_sandbox(backend: SandboxBackend) -> dict[str, float]:
    """A bare sandbox of the docker backend running `python3 -c pass`, step by step (ms)."""
    spec = SandboxSpec(
        run_id=f"bench-{os.urandom(6).hex()}", worker_id="b", command=["python3", "-c", "pass"],
        env={},
    )  # fmt: skip
    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    sandbox = await backend.create(spec)
    t1 = time.perf_counter()
    try:
        await sandbox.start()
        t2 = time.perf_counter()
        code = await sandbox.wait(timeout=60)
        t3 = time.perf_counter()
    finally:
        await sandbox.remove()
    t4 = time.perf_counter()
    if code != 0:
        raise RuntimeError(f"python3 -c pass exited {code} in the docker sandbox")
    for name, (a, b) in zip(SANDBOX_STEPS, ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True):
        steps[name] = (b - a) * 1000
    steps["total"] = (t4 - t0) * 1000
    return steps


def run_checked(
    served: Served, client: Any, tracer: Tracer | None
) -> tuple[Sample, dict[str, float]]:
    """One measured run (and, when tracing, the server's calls during it)."""
    if tracer is not None:
        tracer.take()
        tracer.active = True
    try:
        sample = measure_run(client, served.agent)
    finally:
        if tracer is not None:
            tracer.active = False
    if not sample.isolation.startswith("docker("):
        raise RuntimeError(f"the run got {sample.isolation!r}, not a docker sandbox")
    if tracer is None:
        return sample, {}
    calls, counts, moments = tracer.take()
    # A run that got a warm container adopted one and created none (a failed adoption falls
    # back to a cold one); refills of the pool call neither.
    if counts.get(ADOPT, 0) > counts.get(COLD_CREATE, 0):
        calls[WARM] = 1.0
    marks = ("terminal line from the sandbox", "stdout EOF", "cleanup start")
    if set(marks) <= set(moments):
        # Split the timeline's "sandbox exit" (result_upload line -> cleanup starts).
        terminal, eof, cleanup = (moments[m] for m in marks)
        calls[EXIT_SPLIT[0]] = round(sample.segments["sandbox exit"] - (cleanup - terminal), 2)
        calls[EXIT_SPLIT[1]] = round(eof - terminal, 2)
        calls[EXIT_SPLIT[2]] = round(cleanup - eof, 2)
    return sample, calls


def series_numbers(one: Series, base: dict[str, float]) -> dict[str, Any]:
    samples = one.samples
    total = stats([s.total_ms for s in samples])
    keys = dict.fromkeys(k for t in one.traces for k in t if k != WARM)
    traced = {k: stats([t[k] for t in one.traces if k in t]) for k in keys}
    return {
        "runs": len(samples),
        "warm_runs": sum(1 for t in one.traces if t.get(WARM)) if one.traces else None,
        "overhead_ms": total,
        "ratio_median": round(total["median"] / base["median"], 2),
        "ratio_p95": round(total["p95"] / base["p95"], 2),
        "post_ms": stats([s.post_ms for s in samples]),
        "first_event_ms": stats([s.first_event_ms for s in samples]),
        "phases_ms": {p: stats([float(s.phases[p]) for s in samples]) for p in PHASES},
        "segments_ms": {g: stats([s.segments[g] for s in samples]) for g in SEGMENTS},
        "server_calls_ms": traced,
        "samples": [asdict(s) for s in samples],
        "traces": one.traces,
    }


def report(
    series: dict[str, Series],
    baseline: list[float],
    sandbox: list[dict[str, float]],
    extra: dict[str, Any],
) -> dict[str, Any]:
    base = stats(baseline)
    isolations = {s.isolation for one in series.values() for s in one.samples}
    return {
        "date": now_iso(),
        "image": IMAGE,
        "isolation": sorted({re.sub(r"\+uid\(\d+\)", "+uid(pool)", i) for i in isolations}),
        "baseline_ms": base,
        "sandbox_ms": {k: stats([s[k] for s in sandbox]) for k in ("total", *SANDBOX_STEPS)},
        "series": {name: series_numbers(one, base) for name, one in series.items()},
        **extra,
    }


def print_table(numbers: dict[str, Any]) -> None:
    def row(label: str, v: dict[str, float]) -> None:
        print(f"  {label:<56}{v['median']:>8.1f}{v['p95']:>8.1f}{v['min']:>8.1f}")

    m = numbers["machine"]
    print(f"container run overhead, {numbers['date']}, image {numbers['image']}, "
          f"warm pool {numbers['warm_pool']}")  # fmt: skip
    print(f"  {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, Docker {m['docker']}, "
          f"load {m['loadavg_1min_before_after']}")  # fmt: skip
    print(f"  isolation: {', '.join(numbers['isolation'])}")
    print(f"\n  {'ms':<56}{'median':>8}{'p95':>8}{'min':>8}")
    for name, one in numbers["series"].items():
        warm = f", {one['warm_runs']} warm" if one["warm_runs"] is not None else ""
        row(f"POST -> terminal line, {name} ({one['runs']} runs{warm})", one["overhead_ms"])
    row(BASELINE_LABEL, numbers["baseline_ms"])
    for name, one in numbers["series"].items():
        print(f"  ratio {name} / baseline: {one['ratio_median']} (median), "
              f"{one['ratio_p95']} (p95)")  # fmt: skip
    row(SANDBOX_LABEL, numbers["sandbox_ms"]["total"])
    for step in SANDBOX_STEPS:
        row(f"  {step}", numbers["sandbox_ms"][step])
    if numbers.get("refill_wait_ms"):
        row("waited for the pool to refill", numbers["refill_wait_ms"])
    if numbers.get("pool_note"):
        print(f"  {numbers['pool_note']}")
    for name, one in numbers["series"].items():
        print(f"\n  -- {name} --")
        row("POST answered (202)", one["post_ms"])
        row("POST -> first event line", one["first_event_ms"])
        for key, title in (
            ("phases_ms", "phase lines' durationMs"),
            ("segments_ms", "timeline from the lines' ts (adds up to the total)"),
            ("server_calls_ms", "server calls during the run (sum per run; nested: indented)"),
        ):
            if not one[key]:
                continue
            print(f"  {title}")
            for label, v in one[key].items():
                row(f"  {label}", v)
    print(f"\n  containers left after the server stopped: {numbers['left_after_shutdown']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Container run overhead (see the module doc).")
    parser.add_argument("--runs", type=int, default=30, help="measured runs (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="discarded runs first (default 3)")
    parser.add_argument("--warm-pool", type=int, default=0, help="container_warm_pool (default 0)")
    parser.add_argument("--refill-timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument(
        "--no-trace", action="store_true", help="do not time the server's calls (see Tracer)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.warm_pool < 0:
        parser.error("--runs must be >= 1, --warmup and --warm-pool >= 0")
    ensure_docker(IMAGE)
    tracer = None if args.no_trace else Tracer().install()
    api = docker_api()
    pool = args.warm_pool
    series = {name: Series() for name in ((REFILLED, BACK_TO_BACK) if pool else (COLD,))}
    baseline: list[float] = []
    sandbox: list[dict[str, float]] = []
    waits: list[float] = []
    pool_note = ""
    loads = [round(os.getloadavg()[0], 2)]
    with (
        serving("container", workers=2, container_warm_pool=pool) as served,
        served.client() as client,
        asyncio.Runner() as loop,
    ):
        # Own state dir, so its own label scope (the workers' reaper leaves these alone), no pool.
        refs: Settings = served.settings.model_copy(
            update={"data_dir": served.settings.data_dir.parent / "refs", "container_warm_pool": 0}
        )
        backend = docker_backend(refs)
        probes: dict[str, Callable[[], Any]] = {
            BASELINE_LABEL: lambda: time_command(baseline_argv(IMAGE)),
            SANDBOX_LABEL: lambda: loop.run(time_sandbox(backend)),
        }
        for i in range(args.warmup + args.runs):  # interleaved: all see the same machine state
            measured = i >= args.warmup
            if pool and not pool_note:
                waited = wait_running(api, served.scope, pool, args.refill_timeout)
                if waited is None:
                    pool_note = (
                        f"the warm pool never reached {pool} running containers within "
                        f"{args.refill_timeout} s (no more waits)"
                    )
                    print(pool_note, file=sys.stderr)
                elif measured:
                    waits.append(waited * 1000)
            times = {label: probe() for label, probe in probes.items()}
            measured_runs = [run_checked(served, client, tracer)]
            if pool:  # at once, while the pool refills
                measured_runs.append(run_checked(served, client, tracer))
            if measured:
                baseline.append(times[BASELINE_LABEL])
                sandbox.append(times[SANDBOX_LABEL])
                for name, (sample, trace) in zip(series, measured_runs, strict=True):
                    series[name].samples.append(sample)
                    if trace:
                        series[name].traces.append(trace)
        loads.append(round(os.getloadavg()[0], 2))
    left = remove_containers(api, served.scope)
    extra = {
        "machine": machine(loads),
        "warm_pool": pool,
        "refill_wait_ms": stats(waits) if waits else None,
        "pool_note": pool_note,
        "left_after_shutdown": left,
    }
    numbers = report(series, baseline, sandbox, extra)
    print_table(numbers)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
