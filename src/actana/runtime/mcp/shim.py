"""The `mcp` command inside the sandbox: call an MCP tool from a script.

    mcp list [SERVER]                          the tools (and their arguments) of each server
    mcp call SERVER.TOOL [KEY=VALUE ...]       VALUE is JSON when it parses (42, true, [1,2],
                                               {"a":1}, "quoted"), a plain string otherwise
    mcp call SERVER.TOOL --json '{"k": 1}'     the arguments as one JSON object

It talks to the runtime over the private unix socket named by $ACTANA_MCP_SOCKET; the runtime
makes the call (with credentials this process never sees) and records it as a `step`. The
result's text goes to stdout; exit status 0 on success, 1 when the tool failed, 2 on bad usage.
Standard library only: it starts as `python3 -I -m actana.runtime.mcp.shim` on every call.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

ENV_SHIM_SOCKET = "ACTANA_MCP_SOCKET"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# The runtime bounds each call by the tool timeout and the run's deadline; this only keeps a
# shim from hanging forever on a runtime that is gone.
_CLIENT_TIMEOUT_SEC = 3600

USAGE = __doc__.split("\n\n")[1] if __doc__ else ""


class UsageError(Exception):
    """The command line is wrong; the message says how to fix it."""


def parse_value(text: str) -> Any:
    """`text` as JSON when it is valid JSON, else the text itself (so `city=Paris` works)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_call(argv: list[str]) -> tuple[str, str, dict[str, Any]]:
    """Parse the words after `mcp call`.

    Returns:
        (server, tool, arguments).

    Raises:
        UsageError: no SERVER.TOOL, a word that is not KEY=VALUE, or bad --json.
    """
    if not argv:
        raise UsageError("mcp call needs SERVER.TOOL, e.g. `mcp call time.get_current_time`")
    target, rest = argv[0], argv[1:]
    server, dot, tool = target.partition(".")
    if not dot or not server or not tool:
        raise UsageError(f"{target!r} is not SERVER.TOOL (a server name, a dot, a tool name)")
    arguments: dict[str, Any] = {}
    words = iter(rest)
    for word in words:
        if word == "--json":
            text = next(words, None)
            if text is None:
                raise UsageError("--json needs a JSON object after it")
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise UsageError(f"--json: not valid JSON ({exc})") from None
            if not isinstance(value, dict):
                raise UsageError(f"--json must be a JSON object, got {type(value).__name__}")
            arguments.update(value)
            continue
        key, equals, value_text = word.partition("=")
        if not equals or not key:
            raise UsageError(f"{word!r} is not KEY=VALUE")
        arguments[key] = parse_value(value_text)
    return server, tool, arguments


def parse_command(argv: list[str]) -> dict[str, Any]:
    """The request for the runtime that the command line asks for.

    Raises:
        UsageError: an unknown subcommand or bad arguments.
    """
    if not argv or argv[0] in ("-h", "--help", "help"):
        raise UsageError("")
    command, rest = argv[0], argv[1:]
    if command == "list":
        if len(rest) > 1:
            raise UsageError("mcp list takes at most one SERVER")
        return {"op": "list", "server": rest[0] if rest else None}
    if command == "call":
        server, tool, arguments = parse_call(rest)
        return {"op": "call", "server": server, "tool": tool, "arguments": arguments}
    raise UsageError(f"unknown command {command!r}: use `mcp list` or `mcp call`")


def exchange(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """Send one request over the socket at `path` and read the one answer.

    Raises:
        OSError: the socket cannot be reached.
        ValueError: the answer is not a JSON object.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_CLIENT_TIMEOUT_SEC)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks, size = [], 0
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_MESSAGE_BYTES:
                raise ValueError("the runtime's answer is too big")
    answer = json.loads(b"".join(chunks))
    if not isinstance(answer, dict):
        raise ValueError("the runtime's answer is not a JSON object")
    return answer


def _print_listing(servers: dict[str, Any]) -> None:
    for server, tools in servers.items():
        print(f"{server}:")
        for tool in tools:
            props = tool.get("input_schema", {}).get("properties", {})
            required = set(tool.get("input_schema", {}).get("required", []))
            args = " ".join(f"{k}=…" if k in required else f"[{k}=…]" for k in props)
            print(f"  {server}.{tool['name']} {args}".rstrip())
            if tool.get("description"):
                print(f"      {tool['description'].splitlines()[0][:200]}")


def main(argv: list[str]) -> int:
    """Run the `mcp` command; returns the exit status."""
    try:
        request = parse_command(argv)
    except UsageError as exc:
        stream = sys.stdout if not str(exc) else sys.stderr
        if str(exc):
            print(f"mcp: {exc}", file=sys.stderr)
        print(f"usage:\n{USAGE}", file=stream)
        return 0 if not str(exc) else 2
    path = os.environ.get(ENV_SHIM_SOCKET)
    if not path:
        print(f"mcp: ${ENV_SHIM_SOCKET} is not set: this run has no MCP servers", file=sys.stderr)
        return 2
    try:
        answer = exchange(path, request)
    except (OSError, ValueError) as exc:
        print(f"mcp: cannot reach the runtime at {path}: {exc}", file=sys.stderr)
        return 1
    if not answer.get("ok"):
        print(f"mcp: {answer.get('error', 'the call failed')}", file=sys.stderr)
        return 2 if answer.get("usage") else 1
    if request["op"] == "list":
        _print_listing(answer.get("servers", {}))
        return 0
    result = answer.get("result", {})
    text = result.get("text") if isinstance(result, dict) else None
    # The text is what a script wants to pipe on; without any, the whole result as JSON.
    print(text if text else json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
