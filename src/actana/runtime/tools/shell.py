"""The tools that run code: `bash` and `python`.

Both run in the workspace directory with the runtime's environment (the one-time tokens are gone
from it before any tool runs), in their own process group which is killed as a whole when the
call ends; see `actana.runtime.process`. A non-zero exit code is a result like any other; only a
timeout fails the step, with whatever output there was.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from actana.protocol.payloads import RunLimits
from actana.runtime.process import Captured, run_captured, shell_argv
from actana.runtime.tools.base import Invocation, Tool, ToolError, decode_capped, schema

# Linux refuses a single argv string over 128 KiB (MAX_ARG_STRLEN); stay clear of it.
_MAX_PYTHON_CODE_BYTES = 100_000


def _timeout(inv: Invocation) -> float:
    """The requested timeout, cut to the tool's own and to the time left in the run."""
    requested = inv.args.get("timeout_sec")
    return min(inv.timeout_sec, math.inf if requested is None else float(requested))


def _result(captured: Captured, timeout: float) -> dict[str, Any]:
    stdout, stdout_truncated = decode_capped(captured.stdout, captured.stdout_total)
    stderr, stderr_truncated = decode_capped(captured.stderr, captured.stderr_total)
    result: dict[str, Any] = {
        "exit_code": captured.exit_code,
        "stdout": stdout,
        "stderr": stderr,
        "stdout_truncated": stdout_truncated,
        "stderr_truncated": stderr_truncated,
        "timed_out": captured.timed_out,
    }
    if captured.timed_out:
        raise ToolError(
            f"timed out after {timeout:g} s; the command and everything it started were killed. "
            "Run long jobs with a larger timeout_sec, or in smaller steps.",
            details=result,
        )
    return result


def bash(inv: Invocation) -> dict[str, Any]:
    """Run a shell command."""
    timeout = _timeout(inv)
    argv = shell_argv(inv.args["command"])
    return _result(run_captured(argv, cwd=inv.root, timeout=timeout, cap=inv.output_cap), timeout)


def python(inv: Invocation) -> dict[str, Any]:
    """Run Python code with the sandbox's interpreter (`python -c code`)."""
    code: str = inv.args["code"]
    if len(code.encode()) > _MAX_PYTHON_CODE_BYTES:
        raise ToolError(
            f"the code is longer than {_MAX_PYTHON_CODE_BYTES} bytes; save it with write_file "
            "and run it with bash, e.g. `python3 script.py`"
        )
    timeout = _timeout(inv)
    argv = [sys.executable, "-c", code]
    return _result(run_captured(argv, cwd=inv.root, timeout=timeout, cap=inv.output_cap), timeout)


def _timeout_arg(limit: float) -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": 1,
        "description": f"Seconds before it is killed (default and maximum {limit:g}).",
    }


def tools(limits: RunLimits) -> list[Tool]:
    """bash and python, with the run's limits applied."""
    timeout = float(limits.tool_timeout_sec)
    out_cap = limits.tool_output_bytes
    run_output = (
        f"Returns exit_code, stdout and stderr (each cut at {out_cap} bytes, with "
        "stdout_truncated/stderr_truncated flags) and timed_out. A non-zero exit code is a normal "
        "result. No stdin. Processes left running in the background are killed when it finishes."
    )
    return [
        Tool(
            "bash",
            f"Run a bash command in the workspace directory. {run_output}",
            schema(
                {
                    "command": {"type": "string", "minLength": 1},
                    "timeout_sec": _timeout_arg(timeout),
                },
                ["command"],
            ),
            timeout,
            out_cap,
            bash,
        ),
        Tool(
            "python",
            "Run Python 3 code (python -c) in the workspace directory; print what you want to "
            f"see. {run_output}",
            schema(
                {"code": {"type": "string", "minLength": 1}, "timeout_sec": _timeout_arg(timeout)},
                ["code"],
            ),
            timeout,
            out_cap,
            python,
        ),
    ]
