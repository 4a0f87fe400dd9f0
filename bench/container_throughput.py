"""Throughput: 20 one-turn scripted runs submitted at once to 4 in-process workers (issue 4
"Measure"), for the `container` flavor and, for comparison, the `native` one.

Each flavor runs in a fresh child process (so that its peak RSS is its own): a real server
(uvicorn, `workers=4`, `max_concurrent_runs` and `..._per_workspace` 8, SQLite in a temp data
dir) in a background thread, one warm-up run, then all POSTs at once, each followed by its
`GET runs/{run}/events` stream to the terminal line. Checked: every run succeeded, and nothing
is left behind (no container labelled `actana.run=<id>`, none of the deployment at all, no
staging folder under `containers_dir`, nothing the backend's `list_own` finds). Reported: the
wall time from the first POST to the last terminal line, per-run latency and phases, and memory:
the process's peak RSS (`getrusage`), and sampled every 200 ms by a process of its own: the
process's RSS, the sandboxes' memory (containers: their cgroups; native: the process's
descendants) and Docker's processes.

    .venv/bin/python bench/container_throughput.py [--runs 20] [--workers 4] [--concurrency 8]
                                                   [--flavors container,native] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (
    Served,
    container_memory,
    containers,
    docker_api,
    ensure_docker,
    machine,
    now_iso,
    remove_containers,
    serving,
)
from native_overhead import stats

from actana.protocol.events import PHASES
from actana.runs.backends import SandboxBackends
from actana.settings import Settings

PAGE = os.sysconf("SC_PAGE_SIZE")
DOCKER_PROCESSES = {"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2"}
MIB = 1 << 20


# -- Memory, sampled ------------------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, str, int, int]]:
    """pid -> (ppid, comm, rss, anonymous rss) in bytes, of every process /proc shows."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            folder = Path("/proc", entry.name)
            stat = (folder / "stat").read_text(encoding="utf-8", errors="replace")
            statm = (folder / "statm").read_text(encoding="utf-8").split()
            rss, shared = int(statm[1]) * PAGE, int(statm[2]) * PAGE
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError, OSError):
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        found[int(entry.name)] = (ppid, comm, rss, rss - shared)
    return found


def _is_helper(pid: int) -> bool:
    """This sampler and multiprocessing's resource tracker: children of the measured process
    that are not sandboxes."""
    try:
        return b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class MemorySampler:
    """Peaks over time (bytes): the RSS of process `root`, the sum over its descendants (the
    native sandboxes), the sum over the deployment's containers (cgroup usage and anonymous
    memory), and Docker's own processes; also the most sandboxes alive at once."""

    def __init__(self, root: int, flavor: str, scope: str) -> None:
        self.root, self.flavor, self.scope = root, flavor, scope
        self.peaks: dict[str, float] = {}
        self.samples = 0
        self._api = docker_api() if flavor == "container" else None

    def _peak(self, key: str, value: float) -> None:
        self.peaks[key] = max(self.peaks.get(key, 0), value)

    def sample(self) -> None:
        procs = _processes()
        self._peak("process_rss", procs.get(self.root, (0, "", 0, 0))[2])
        children: dict[int, list[int]] = {}
        for pid, (ppid, *_) in procs.items():
            children.setdefault(ppid, []).append(pid)
        todo = [pid for pid in children.get(self.root, ()) if not _is_helper(pid)]
        descendants = anon = bwraps = 0
        while todo:
            pid = todo.pop()
            descendants, anon = descendants + procs[pid][2], anon + procs[pid][3]
            bwraps += procs[pid][1] == "bwrap" and procs[pid][0] == self.root
            todo += children.get(pid, ())
        self._peak("descendants_rss", descendants)
        self._peak("descendants_anon", anon)
        self._peak("docker_processes_rss",
                   sum(p[2] for p in procs.values() if p[1] in DOCKER_PROCESSES))  # fmt: skip
        if self._api is not None:
            usage = anon = live = 0
            for item in containers(self._api, self.scope):
                got = container_memory(item["Id"])
                if got is not None:
                    usage, anon, live = usage + got[0], anon + got[1], live + 1
            self._peak("containers_usage", usage)
            self._peak("containers_anon", anon)
            self._peak("live_sandboxes", live)
        else:
            self._peak("live_sandboxes", bwraps)
        self.samples += 1


def _sample_loop(
    root: int, flavor: str, scope: str, interval: float, events: tuple[Any, Any], out: Any
) -> None:
    ready, halt = events
    sampler = MemorySampler(root, flavor, scope)
    busy = 0.0
    while not halt.is_set():
        t0 = time.perf_counter()
        sampler.sample()
        busy += time.perf_counter() - t0
        ready.set()
        halt.wait(max(0.0, interval - (time.perf_counter() - t0)))
    out.send({"peaks": sampler.peaks, "samples": sampler.samples,
              "busy_ms_per_sample": round(busy * 1000 / max(sampler.samples, 1), 2)})  # fmt: skip


class SamplerProcess:
    """`MemorySampler` in a process of its own (spawned, so that its work does not compete
    for the GIL of the server it measures)."""

    def __init__(self, flavor: str, scope: str, interval: float = 0.2) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._ready, self._halt = ctx.Event(), ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        args = (os.getpid(), flavor, scope, interval, (self._ready, self._halt), send)
        self._process = ctx.Process(target=_sample_loop, args=args, daemon=True)

    def start(self) -> None:
        """Start it and wait for its first sample (its imports would compete with the runs)."""
        self._process.start()
        if not self._ready.wait(60):
            raise RuntimeError("the memory sampler did not start")

    def stop(self) -> dict[str, Any]:
        self._halt.set()
        got: dict[str, Any] = self._recv.recv() if self._recv.poll(30) else {}
        self._process.join(timeout=10)
        return got


# -- The burst ------------------------------------------------------------------------------------


async def one_run(client: httpx.AsyncClient, agent: str, t0: float) -> dict[str, Any]:
    """POST a run and follow its events to the terminal line; times relative to `t0` (ms)."""
    posted_at = time.time_ns() / 1e6  # wall clock, like the lines' ts
    created = await client.post(f"/agents/{agent}/runs", json={"prompt": "go"})
    posted = (time.perf_counter() - t0) * 1000
    run_id = created.raise_for_status().json()["id"]
    lines: list[dict[str, Any]] = []
    async with client.stream("GET", f"/runs/{run_id}/events") as response:
        async for raw in response.raise_for_status().aiter_lines():
            if raw:
                lines.append(json.loads(raw))
                if lines[-1]["type"] in ("result", "error"):
                    break
    done = (time.perf_counter() - t0) * 1000
    run = (await client.get(f"/runs/{run_id}")).raise_for_status().json()
    at = {ln["phase"]: ln for ln in lines if ln.get("phase")}
    phases = {name: int(ln["durationMs"]) for name, ln in at.items()}
    # Waiting for a free worker: POST sent -> provisioning starts (its line's ts - durationMs).
    queued = None
    if "provisioning" in at:
        queued = at["provisioning"]["ts"] - at["provisioning"]["durationMs"] - posted_at
    return {"id": run_id, "status": run["status"], "isolation": run.get("isolation"),
            "posted_ms": posted, "done_ms": done, "queued_ms": queued,
            "in_worker_ms": done - posted - queued if queued is not None else None,
            "phases": phases, "last": lines[-1] if lines else None}  # fmt: skip


async def burst(served: Served, runs: int) -> tuple[float, list[dict[str, Any]]]:
    async with served.async_client() as client:
        await one_run(client, served.agent, time.perf_counter())  # warm-up, not counted
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one_run(client, served.agent, t0) for _ in range(runs)))
    return (time.perf_counter() - t0) * 1000, list(results)


def leftovers(served: Served, flavor: str, run_ids: list[str]) -> dict[str, Any]:
    """What the runs left behind (all empty when the workers cleaned up)."""
    settings = served.settings
    found: dict[str, Any] = {}
    if flavor == "container":
        api = docker_api()
        found["containers_labelled_with_a_run"] = [
            c["Id"][:12] for run in run_ids for c in containers(api, served.scope, run)
        ]
        found["containers_of_the_deployment"] = [
            c["Id"][:12] for c in containers(api, served.scope)
        ]
        folder = settings.containers_dir
    else:
        folder = settings.sandboxes_dir
    entries = sorted(e.name for e in folder.iterdir()) if folder.is_dir() else []
    # containers_dir holds only staging folders: anything there is left behind.
    found["state_folders"] = [n for n in entries if flavor == "container" or n in set(run_ids)]
    backends = SandboxBackends(settings)
    backend = backends.container if flavor == "container" else backends.native
    found["backend_list_own"] = [ref.run_id for ref in asyncio.run(backend.list_own())]
    return found


def child(flavor: str, runs: int, workers: int, concurrency: int, pool: int) -> dict[str, Any]:
    """One flavor, in this (fresh) process."""
    overrides = {"workers": workers, "max_concurrent_runs": concurrency,
                 "max_concurrent_runs_per_workspace": concurrency,
                 "container_warm_pool": pool if flavor == "container" else 0}  # fmt: skip
    loads = [round(os.getloadavg()[0], 2)]
    with serving(flavor, **overrides) as served:
        idle = MemorySampler(os.getpid(), flavor, served.scope)
        idle.sample()
        before = idle.peaks
        sampler = SamplerProcess(flavor, served.scope)
        sampler.start()
        try:
            total_ms, results = asyncio.run(burst(served, runs))
        finally:
            sampled = sampler.stop()
        peaks = sampled.get("peaks", {})
        ids = [r["id"] for r in results]
        left = leftovers(served, flavor, ids)
        loads.append(round(os.getloadavg()[0], 2))
    self_usage = resource.getrusage(resource.RUSAGE_SELF)
    after_stop = remove_containers(docker_api(), served.scope) if flavor == "container" else 0
    failed = [r for r in results if r["status"] != "succeeded"]
    latency = [r["done_ms"] for r in results]
    return {
        "flavor": flavor,
        "runs": runs,
        "workers": workers,
        "max_concurrent_runs": concurrency,
        "warm_pool": overrides["container_warm_pool"],
        "loadavg_1min_before_after": loads,
        "succeeded": runs - len(failed),
        "failed": [{"id": r["id"], "status": r["status"], "last": r["last"]} for r in failed],
        "isolation": sorted({str(r["isolation"]).split("+uid")[0] for r in results}),
        "left_behind": left,
        "left_after_shutdown": after_stop,
        "total_ms": round(total_ms, 1),
        "runs_per_sec": round(runs / (total_ms / 1000), 2),
        "submitted_ms": round(max(r["posted_ms"] for r in results), 1),
        "latency_ms": stats(latency) | {"max": round(max(latency), 2)},
        "queued_ms": stats([r["queued_ms"] or 0.0 for r in results]),
        "in_worker_ms": stats([r["in_worker_ms"] or 0.0 for r in results]),
        "phases_ms": {p: stats([float(r["phases"].get(p, 0)) for r in results]) for p in PHASES},
        "memory_mib": {
            "process_peak_rss_getrusage": round(self_usage.ru_maxrss * 1024 / MIB, 1),
            "before_burst": {k: round(v / MIB, 1) for k, v in before.items()},
            "peak_during_burst": {
                k: (round(v / MIB, 1) if k != "live_sandboxes" else int(v))
                for k, v in peaks.items()
            },
            "samples": sampled.get("samples"),
            "sampler_busy_ms_per_sample": sampled.get("busy_ms_per_sample"),
        },
        "runs_detail": results,
    }


def print_table(numbers: dict[str, Any]) -> None:
    m = numbers["machine"]
    print(f"throughput, {numbers['date']}: {m['platform']}, {m['cpus']} CPUs, "
          f"Python {m['python']}, Docker {m['docker']}")  # fmt: skip
    results = numbers["flavors"]
    names = list(results)
    print(f"\n  {'':<46}" + "".join(f"{n:>14}" for n in names))

    def row(label: str, values: list[Any]) -> None:
        print(f"  {label:<46}" + "".join(f"{v:>14}" for v in values))

    r = [results[n] for n in names]
    row("runs (workers / max concurrent)",
        [f"{x['runs']} ({x['workers']}/{x['max_concurrent_runs']})" for x in r])  # fmt: skip
    row("succeeded", [x["succeeded"] for x in r])
    left = [sum(map(len, x["left_behind"].values())) + x["left_after_shutdown"] for x in r]
    row("left behind (any check)", left)
    row(
        "load (1 min) before / after",
        ["/".join(map(str, x["loadavg_1min_before_after"])) for x in r],
    )
    row("total wall time, first POST -> last line (s)", [f"{x['total_ms'] / 1000:.2f}" for x in r])
    row("runs per second", [x["runs_per_sec"] for x in r])
    row("all POSTs answered after (ms)", [x["submitted_ms"] for x in r])
    for key in ("median", "p95", "max"):
        row(f"per-run POST -> terminal line, {key} (ms)", [x["latency_ms"][key] for x in r])
    for key, label in (("queued_ms", "waiting for a worker"), ("in_worker_ms", "in a worker")):
        row(f"  of which {label}, median (ms)", [x[key]["median"] for x in r])
    for phase in PHASES:
        row(f"  phase {phase}, median (ms)", [x["phases_ms"][phase]["median"] for x in r])
    row("process peak RSS, getrusage (MiB)",
        [x["memory_mib"]["process_peak_rss_getrusage"] for x in r])  # fmt: skip
    keys = ("process_rss", "descendants_rss", "descendants_anon", "containers_anon",
            "containers_usage",
            "docker_processes_rss", "live_sandboxes")  # fmt: skip
    for key in keys:

        def pair(x: dict[str, Any], key: str = key) -> str:
            before = x["memory_mib"]["before_burst"].get(key, "-")
            peak = x["memory_mib"]["peak_during_burst"].get(key, "-")
            return f"{before}/{peak}"

        unit = "" if key == "live_sandboxes" else " (MiB)"
        row(f"sampled {key}{unit}: idle/peak", [pair(x) for x in r])
    row("  (sampler: samples, ms per sample)",
        [f"{x['memory_mib']['samples']}, {x['memory_mib']['sampler_busy_ms_per_sample']}"
         for x in r])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Throughput (see the module doc).")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="max_concurrent_runs(_per_ws)")
    parser.add_argument("--warm-pool", type=int, default=0, help="container_warm_pool (default 0)")
    parser.add_argument("--flavors", default="container,native")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one flavor, JSON out
    args = parser.parse_args(argv)
    if args.child:
        result = child(args.child, args.runs, args.workers, args.concurrency, args.warm_pool)
        print(json.dumps(result))
        return 0
    flavors = [f for f in args.flavors.split(",") if f]
    if set(flavors) - {"container", "native"}:
        parser.error("--flavors: container and/or native")
    if "container" in flavors:
        ensure_docker(Settings(_env_file=None).sandbox_image)
    numbers: dict[str, Any] = {"date": now_iso(), "flavors": {}}
    loads = [round(os.getloadavg()[0], 2)]
    for flavor in flavors:
        command = [sys.executable, __file__, "--child", flavor, "--runs", str(args.runs),
                   "--workers", str(args.workers), "--concurrency", str(args.concurrency),
                   "--warm-pool", str(args.warm_pool)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-4000:])
            sys.exit(f"the {flavor} child failed ({done.returncode})")
        numbers["flavors"][flavor] = json.loads(done.stdout.strip().splitlines()[-1])
    loads.append(round(os.getloadavg()[0], 2))
    numbers["machine"] = machine(loads)
    print_table(numbers)
    bad = [f for f, x in numbers["flavors"].items()
           if x["succeeded"] != x["runs"] or any(x["left_behind"].values())
           or x["left_after_shutdown"]]  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    if bad:
        for flavor in bad:
            x = numbers["flavors"][flavor]
            print(f"\n{flavor}: FAILED: {x['failed'][:3]} left behind {x['left_behind']}",
                  file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
