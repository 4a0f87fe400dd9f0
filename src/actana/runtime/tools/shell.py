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

from actana.runtime.process import Captured, run_captured, shell_argv
from actana.runtime.tools.base import Invocation, ToolError, decode_capped

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
