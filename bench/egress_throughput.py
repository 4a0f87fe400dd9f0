"""What the egress proxy costs a download (DESIGN.md section 7, issue 6 "Measure").

An origin HTTP server on 127.0.0.1 (a child process, so that it does not share the bench's GIL)
serves `GET /bytes/<n>`: n bytes, then it closes the connection. The real `EgressProxy`
(`actana.runs.egress`) listens on a unix socket, served by an asyncio loop in a background
thread of this process, as a worker serves it; its policy is `open` (the default; destination
`127.0.0.1`) or `allowlist` (`--policy allowlist`: the allowed domain `localhost`, looked up by
the host's resolver), both exempting loopback as `ACTANA_EGRESS_ALLOWED_NETWORKS=127.0.0.0/8`
would. The client is plain blocking sockets in the main thread, the same code for each mode:

- `direct` (baseline): TCP to the origin, `GET /bytes/<n>` (origin form);
- `proxy GET`: the unix socket, `GET http://host:port/bytes/<n>` (absolute form);
- `proxy CONNECT`: the unix socket, `CONNECT host:port`, then the same origin-form GET through
  the tunnel.

Every request is a new connection (the proxy forwards with `Connection: close`). Two numbers:
- throughput: `--mb` MB per download, `--reps` downloads per mode (modes interleaved, order
  rotated), MB/s;
- connection setup latency: `--requests` small requests (`--small` bytes) per mode, connect to
  last byte, interleaved likewise.

    .venv/bin/python bench/egress_throughput.py [--mb 32] [--reps 10] [--requests 200]
        [--policy open|allowlist] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from native_overhead import stats

from actana.runs.egress import EgressLimits, EgressProxy
from actana.runs.egress_policy import EgressPolicy

MB = 1024 * 1024
EXEMPT = ["127.0.0.0/8", "::1/128"]
MODES = ("direct (baseline)", "proxy GET (absolute form)", "proxy CONNECT (tunnel)")
_CHUNK = 1 << 20


# --- the origin (child process) ------------------------------------------------------------------


class _Origin(socketserver.BaseRequestHandler):
    body = memoryview(os.urandom(_CHUNK))

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = self.request.recv(65536)
            if not data:
                return
            head += data
        size = int(head.split(b" ", 2)[1].rsplit(b"/", 1)[1])
        self.request.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size
        )
        while size > 0:
            part = self.body[: min(size, _CHUNK)]
            self.request.sendall(part)
            size -= len(part)
        self.request.shutdown(socket.SHUT_WR)


def serve_origin() -> None:
    """Serve until stdin closes; print the port first."""
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Origin)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()


@contextmanager
def origin() -> Iterator[int]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-origin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield int(child.stdout.readline())
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)


# --- the proxy (background thread of this process) ----------------------------------------------


@contextmanager
def proxy(policy: EgressPolicy) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A running EgressProxy; yields its socket path and the log lines it wrote."""
    lines: list[tuple[str, str]] = []
    egress = EgressProxy(policy, EgressLimits(), lambda level, msg: lines.append((level, msg)))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory(prefix="actana-egress-bench-") as directory:
        path = Path(directory) / "egress.sock"
        asyncio.run_coroutine_threadsafe(egress.start(path), loop).result(10)
        try:
            yield str(path), lines
        finally:
            asyncio.run_coroutine_threadsafe(egress.stop(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


# --- the client (main thread, blocking sockets) --------------------------------------------------

_buffer = bytearray(_CHUNK)


def _read_response(sock: socket.socket, size: int, already: bytes = b"") -> None:
    """Read a whole `Connection: close` response; check its status and body length."""
    view = memoryview(_buffer)
    head, total = already, len(already)
    while True:
        got = sock.recv_into(view)
        if not got:
            break
        total += got
        if len(head) < 4096:
            head += bytes(view[:got])
    end = head.find(b"\r\n\r\n")
    if end < 0 or not head.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"unexpected answer: {head[:200]!r}")
    if total - end - 4 != size:
        raise RuntimeError(f"got {total - end - 4} body bytes, expected {size}")


def _request(target: str, host: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def fetch_direct(port: int, size: int, _host: str, _socket: str) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request(f"/bytes/{size}", f"127.0.0.1:{port}"))
        _read_response(sock, size)


def fetch_proxy_get(port: int, size: int, host: str, path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(_request(f"http://{host}:{port}/bytes/{size}", f"{host}:{port}"))
        _read_response(sock, size)


def fetch_proxy_connect(port: int, size: int, host: str, path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                raise RuntimeError(f"the proxy closed the tunnel: {answer[:200]!r}")
            answer += data
        head, rest = answer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"CONNECT refused: {head[:200]!r}")
        sock.sendall(_request(f"/bytes/{size}", f"{host}:{port}"))
        _read_response(sock, size, rest)


FETCH: dict[str, Callable[[int, int, str, str], None]] = dict(
    zip(MODES, (fetch_direct, fetch_proxy_get, fetch_proxy_connect), strict=True)
)


def timed(mode: str, port: int, size: int, host: str, path: str) -> float:
    t0 = time.perf_counter()
    FETCH[mode](port, size, host, path)
    return (time.perf_counter() - t0) * 1000


def interleaved(count: int, measure: Callable[[str], float]) -> dict[str, list[float]]:
    """`count` samples of each mode, one of each per round, the order rotated every round."""
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for i in range(count):
        for k in range(len(MODES)):
            mode = MODES[(i + k) % len(MODES)]
            times[mode].append(measure(mode))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Egress proxy throughput (see the module doc).")
    parser.add_argument("--mb", type=int, default=32, help="MB per download (default 32)")
    parser.add_argument("--reps", type=int, default=10, help="downloads per mode (default 10)")
    parser.add_argument("--requests", type=int, default=200, help="small requests per mode")
    parser.add_argument("--small", type=int, default=100, help="bytes per small request")
    parser.add_argument("--warmup", type=int, default=2, help="discarded rounds first")
    parser.add_argument("--policy", choices=("open", "allowlist"), default="open")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--serve-origin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_origin:
        serve_origin()
        return 0
    if min(args.mb, args.reps, args.requests, args.small) < 1 or args.warmup < 0:
        parser.error("sizes and counts must be >= 1, --warmup >= 0")
    if args.policy == "open":
        host, policy = "127.0.0.1", EgressPolicy.build("open", (), EXEMPT)
    else:
        host, policy = "localhost", EgressPolicy.build("allowlist", ["localhost"], EXEMPT)
    size = args.mb * MB
    loads = [round(os.getloadavg()[0], 2)]
    with origin() as port, proxy(policy) as (path, lines):
        interleaved(args.warmup, lambda mode: timed(mode, port, size, host, path))
        interleaved(args.warmup, lambda mode: timed(mode, port, args.small, host, path))
        big = interleaved(args.reps, lambda mode: timed(mode, port, size, host, path))
        small = interleaved(args.requests, lambda mode: timed(mode, port, args.small, host, path))
    loads.append(round(os.getloadavg()[0], 2))
    refused = [msg for _, msg in lines if msg.startswith("egress refused")]
    if refused:
        raise RuntimeError(f"the proxy refused: {refused[:3]}")
    base = MODES[0]
    numbers: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "loadavg_1min_before_after": loads},
        "policy": args.policy, "destination": f"{host}:<port>", "download_mb": args.mb,
        "reps": args.reps, "requests": args.requests, "small_bytes": args.small,
        "download_ms": {m: stats(v) for m, v in big.items()},
        "connection_ms": {m: stats(v) for m, v in small.items()},
        "proxy_log_lines": len(lines),
        "samples": {"download_ms": big, "connection_ms": small},
    }  # fmt: skip
    numbers["throughput_mb_s"] = {
        m: {q: round(args.mb / (v[q] / 1000), 1) for q in ("median", "p95", "min")}
        for m, v in numbers["download_ms"].items()
    }
    for key in ("throughput_mb_s", "connection_ms"):
        numbers[f"ratio_{key}"] = {
            m: round(numbers[key][m]["median"] / numbers[key][base]["median"], 2) for m in MODES
        }
    print_table(numbers)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def print_table(n: dict[str, Any]) -> None:
    m = n["machine"]
    print(f"egress proxy throughput, policy {n['policy']} to {n['destination']}, {n['date']}")
    print(f"  {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, "
          f"load {m['loadavg_1min_before_after']}")  # fmt: skip
    print(f"\n  download of {n['download_mb']} MB, {n['reps']} per mode")
    print(f"  {'':<28}{'MB/s median':>12}{'at p95 time':>12}{'best':>9}{'ratio':>8}")
    for mode in MODES:
        v = n["throughput_mb_s"][mode]
        ratio = n["ratio_throughput_mb_s"][mode]
        print(f"  {mode:<28}{v['median']:>12.1f}{v['p95']:>12.1f}{v['min']:>9.1f}{ratio:>8.2f}")
    print(f"\n  new connection + {n['small_bytes']} B response, {n['requests']} per mode")
    print(f"  {'ms':<28}{'median':>12}{'p95':>12}{'min':>9}{'ratio':>8}")
    for mode in MODES:
        v = n["connection_ms"][mode]
        ratio = n["ratio_connection_ms"][mode]
        print(f"  {mode:<28}{v['median']:>12.3f}{v['p95']:>12.3f}{v['min']:>9.3f}{ratio:>8.2f}")
    print(f"\n  ratios are to {MODES[0]} (throughput: proxy / direct; latency: proxy / direct)")
    print(f"  the proxy wrote {n['proxy_log_lines']} log lines (cap 200, then counted)")


if __name__ == "__main__":
    sys.exit(main())
