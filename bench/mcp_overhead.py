"""What a stdio MCP server costs a native run (DESIGN.md section 7, issue 6 "Measure").

A real server (uvicorn, two in-process workers, SQLite in a temp data dir; `_common.serving`)
and two native agents with scripted models, run alternately so that both see the same load:

- baseline: no MCP server; the model makes one `bash` call (`date`), then answers;
- subject: the same agent plus the stdio MCP server `time` (`mcp-server-time`, the reference
  server from PyPI, started by the runtime inside the sandbox); the model calls
  `mcp__time__get_current_time`, then answers.

Each run is timed from `POST .../runs` to the terminal line of `GET runs/{run}/events`. From each
run's own stream: the `materialization` phase line's `durationMs` (the runtime starts the MCP
servers in that phase) and the tool step's `durationMs`. A host-side reference (no sandbox, no
run) times `mcp-server-time` itself: spawn, `initialize`, `tools/list`, exit.

    .venv/bin/python bench/mcp_overhead.py [--runs N] [--warmup W] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _common import now_iso, serving
from native_overhead import SEGMENTS, segments, stats

from actana.protocol.events import PHASES

TIME_SERVER = str(Path(sys.executable).with_name("mcp-server-time"))
BASH_SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "bash", "args": {"command": "date"}}]},
    {"text": "done"},
]
MCP_TOOL = "mcp__time__get_current_time"
MCP_SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": MCP_TOOL, "args": {"timezone": "UTC"}}]},
    {"text": "done"},
]
HOST_START = "spawn -> initialize + tools/list answered"
HOST_EXIT = "stdin closed -> process exited"
KINDS = ("baseline (bash `date`)", "subject (MCP time server)")


def make_agent(client: httpx.Client, name: str, script: list[dict[str, Any]], **fields: Any) -> str:
    """A native agent whose scripted model plays `script`."""
    endpoint = {"name": f"{name}-model", "provider": "scripted", "script": script}
    ep = client.post("/model-endpoints", json=endpoint).raise_for_status().json()["id"]
    body = {"name": name, "model_endpoint_id": ep, "sandbox_flavor": "native", **fields}
    return str(client.post("/agents", json=body).raise_for_status().json()["id"])


def measure(client: httpx.Client, agent: str, tool: str) -> dict[str, float]:
    """One run, POST -> terminal line; its materialization phase and its `tool` step (ms)."""
    posted_ms = time.time_ns() / 1e6
    t0 = time.perf_counter()
    run_id = client.post(f"/agents/{agent}/runs", json={"prompt": "go"}).raise_for_status()
    run_id = run_id.json()["id"]
    lines: list[dict[str, Any]] = []
    total = 0.0
    with client.stream("GET", f"/runs/{run_id}/events") as response:
        for raw in response.raise_for_status().iter_lines():
            if raw:
                lines.append(json.loads(raw))
                if lines[-1]["type"] in ("result", "error"):
                    total = (time.perf_counter() - t0) * 1000
                    received_ms = time.time_ns() / 1e6
    run = client.get(f"/runs/{run_id}").json()
    if not total or run["status"] != "succeeded":
        raise RuntimeError(f"run {run_id} ended {run['status']}: {lines[-1:]}")
    warns = [ln["message"] for ln in lines if ln["type"] == "log" and ln["level"] != "info"]
    if warns:
        raise RuntimeError(f"run {run_id}: unexpected log lines {warns}")
    phase = {ln["phase"]: ln["durationMs"] for ln in lines if ln.get("phase")}
    done = [ln for ln in lines if ln["type"] == "step" and ln["status"] != "running"]
    if [(s["name"], s["status"]) for s in done] != [(tool, "succeeded")]:
        raise RuntimeError(f"run {run_id}: expected one succeeded {tool} step, got {done}")
    at = {ln["phase"]: ln for ln in lines if ln.get("phase")}
    upload = at["result_upload"]
    closing = upload["ts"] - upload["durationMs"] - at["execution"]["ts"]
    return {
        "total_ms": total,
        "closing_ms": float(closing),
        **{f"segment {k}": v for k, v in segments(lines, posted_ms, received_ms).items()},
        "materialization_ms": float(phase["materialization"]),
        "step_ms": float(done[0]["durationMs"]),
        **{f"phase {name}": float(phase[name]) for name in PHASES},
    }


def time_server_on_host() -> tuple[float, float]:
    """`mcp-server-time` on the host, no sandbox (ms): spawn -> `initialize` and `tools/list`
    answered; then stdin closed -> the process exited (what the runtime's close waits for)."""
    messages: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [TIME_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    for message in messages:
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        proc.stdin.flush()
        if "id" in message:
            answer = json.loads(proc.stdout.readline())
            if "result" not in answer:
                raise RuntimeError(f"mcp-server-time answered {answer}")
    t1 = time.perf_counter()
    proc.stdin.close()
    proc.wait(timeout=10)
    return (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="MCP server overhead (see the module doc).")
    parser.add_argument("--runs", type=int, default=15, help="measured pairs (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="discarded pairs first (default 2)")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    if not os.access(TIME_SERVER, os.X_OK):
        sys.exit(f"no {TIME_SERVER}: install mcp-server-time into this venv")
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
    host: dict[str, list[float]] = {HOST_START: [], HOST_EXIT: []}
    loads = [round(os.getloadavg()[0], 2)]
    with serving("native", workers=2) as served, served.client() as client:
        server = {"name": "time", "transport": "stdio", "command": TIME_SERVER, "args": []}
        mcp_id = client.post("/mcp-servers", json=server).raise_for_status().json()["id"]
        agents = {
            KINDS[0]: (make_agent(client, "bash", BASH_SCRIPT), "bash"),
            KINDS[1]: (make_agent(client, "mcp", MCP_SCRIPT, mcp_server_ids=[mcp_id]), MCP_TOOL),
        }
        for i in range(args.warmup + args.runs):
            order = KINDS if i % 2 == 0 else KINDS[::-1]  # neither always goes first
            got = {kind: measure(client, *agents[kind]) for kind in order}
            reference = time_server_on_host()
            if i >= args.warmup:
                for kind, sample in got.items():
                    samples[kind].append(sample)
                host[HOST_START].append(reference[0])
                host[HOST_EXIT].append(reference[1])
    loads.append(round(os.getloadavg()[0], 2))

    def of(kind: str, key: str) -> dict[str, float]:
        return stats([s[key] for s in samples[kind]])

    base, subj = KINDS
    numbers: dict[str, Any] = {
        "date": now_iso(),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1min_before_after": loads,
        },
        "runs": args.runs,
        "run_ms": {k: of(k, "total_ms") for k in KINDS},
        "materialization_ms": {k: of(k, "materialization_ms") for k in KINDS},
        "step_ms": {k: of(k, "step_ms") for k in KINDS},
        "phases_ms": {p: {k: of(k, f"phase {p}") for k in KINDS} for p in PHASES},
        "segments_ms": {g: {k: of(k, f"segment {g}") for k in KINDS} for g in SEGMENTS},
        "execution_end_to_result_upload_ms": {k: of(k, "closing_ms") for k in KINDS},
        "host_mcp_server_time_ms": {label: stats(v) for label, v in host.items()},
        "samples": samples,
    }
    for key in ("run_ms", "step_ms"):
        numbers[f"ratio_{key}"] = {
            q: round(numbers[key][subj][q] / numbers[key][base][q], 2) for q in ("median", "p95")
        }
    print_table(numbers)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def print_table(n: dict[str, Any]) -> None:
    def row(label: str, v: dict[str, float]) -> None:
        print(f"  {label:<46}{v['median']:>9.1f}{v['p95']:>9.1f}{v['min']:>9.1f}")

    m = n["machine"]
    print(f"MCP server overhead, native flavor: {n['runs']} runs of each, {n['date']}")
    print(f"  {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, "
          f"load {m['loadavg_1min_before_after']}")  # fmt: skip
    print(f"\n  {'ms':<46}{'median':>9}{'p95':>9}{'min':>9}")
    for title, key in (
        ("POST -> terminal line", "run_ms"),
        ("materialization phase (durationMs)", "materialization_ms"),
        ("tool step (durationMs)", "step_ms"),
    ):
        print(f"  {title}")
        for kind in KINDS:
            row(f"  {kind}", n[key][kind])
    print(f"  every phase (durationMs), median: {' / '.join(KINDS)}")
    for name, v in n["phases_ms"].items():
        print(f"    {name:<44}" + " / ".join(f"{v[k]['median']:.1f}" for k in KINDS))
    print(f"  timeline from the lines' ts (adds up to the total), median: {' / '.join(KINDS)}")
    for name, v in n["segments_ms"].items():
        print(f"    {name:<44}" + " / ".join(f"{v[k]['median']:.1f}" for k in KINDS))
    v = n["execution_end_to_result_upload_ms"]
    print(f"    {'  of which execution end -> upload starts':<46}"
          + " / ".join(f"{v[k]['median']:.1f}" for k in KINDS))  # fmt: skip
    print("  host, no sandbox: mcp-server-time")
    for label, v in n["host_mcp_server_time_ms"].items():
        row(f"  {label}", v)
    r = n["ratio_run_ms"]
    print(f"\n  ratio run subject / baseline: {r['median']} (median), {r['p95']} (p95)")
    r = n["ratio_step_ms"]
    print(f"  ratio step MCP call / bash `date`: {r['median']} (median), {r['p95']} (p95)")
    extra = n["run_ms"][KINDS[1]]["median"] - n["run_ms"][KINDS[0]]["median"]
    mat = n["materialization_ms"][KINDS[1]]["median"] - n["materialization_ms"][KINDS[0]]["median"]
    print(f"  run median difference {extra:.1f} ms, of which materialization {mat:.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
