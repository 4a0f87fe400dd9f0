"""The core tools by name (DESIGN.md section 5), and the `Toolbox` that calls them safely.

Descriptions are written for the model: what the tool does, what it returns and what its limits
are, so that it can act on a truncation or a refusal without guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from actana.protocol.payloads import RunLimits, ToolSchema
from actana.runtime.emit import describe
from actana.runtime.tools import files, search, shell
from actana.runtime.tools.base import MAX_ENTRIES, Invocation, Tool, ToolError, check_args, schema
from actana.runtime.tools.paths import describe_os_error

_PATH = {"type": "string", "description": "Path relative to the workspace directory."}


def _timeout_arg(limit: float) -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": 1,
        "description": f"Seconds before it is killed (default and maximum {limit:g}).",
    }


def build_tools(limits: RunLimits) -> dict[str, Tool]:
    """All core tools, with the run's limits applied.

    Args:
        limits: the run's limits (tool timeout, output and read caps).

    Returns:
        Tools by name.
    """
    timeout = float(limits.tool_timeout_sec)
    out_cap = limits.tool_output_bytes
    run_output = (
        f"Returns exit_code, stdout and stderr (each cut at {out_cap} bytes, with "
        "stdout_truncated/stderr_truncated flags) and timed_out. A non-zero exit code is a normal "
        "result. No stdin. Processes left running in the background are killed when it finishes."
    )
    catalogue = [
        Tool(
            "read_file",
            "Read a UTF-8 text file. Returns content (the requested lines, at most "
            f"{limits.read_file_bytes} bytes), total_lines, next_offset when more lines follow, "
            "and truncated when the byte cap cut the output. Page through big files with "
            "offset/limit.",
            schema(
                {
                    "path": _PATH,
                    "offset": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "First line, 1-based (default 1).",
                    },
                    "limit": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "Most lines to return.",
                    },
                },
                ["path"],
            ),
            timeout,
            limits.read_file_bytes,
            files.read_file,
        ),
        Tool(
            "write_file",
            "Create or overwrite a UTF-8 text file with content; missing parent directories are "
            "created. Files left under assets/ are handed back to the user when the run ends. "
            "Refuses paths outside the workspace and writing through a symlink.",
            schema({"path": _PATH, "content": {"type": "string"}}, ["path", "content"]),
            timeout,
            out_cap,
            files.write_file,
        ),
        Tool(
            "edit_file",
            "Replace exact text in a file: every occurrence of old becomes new. Fails when old "
            "does not occur, or occurs more than count times (default 1): then include more "
            "surrounding text to make old unique, or raise count. Whitespace must match exactly.",
            schema(
                {
                    "path": _PATH,
                    "old": {"type": "string", "minLength": 1},
                    "new": {"type": "string"},
                    "count": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "Most occurrences allowed (default 1).",
                    },
                },
                ["path", "old", "new"],
            ),
            timeout,
            out_cap,
            files.edit_file,
        ),
        Tool(
            "list_dir",
            "List a directory: each entry's name, type (file, dir, symlink, other) and, for "
            f"files, size in bytes. Use path '.' for the workspace. At most {MAX_ENTRIES} entries.",
            schema({"path": _PATH}, ["path"]),
            timeout,
            out_cap,
            search.list_dir,
        ),
        Tool(
            "glob",
            "Find files and directories whose path relative to path (default: the workspace) "
            "matches a glob: * and ? match within one path component, ** any number of "
            "directories, e.g. '**/*.py'. Directories end with '/'. Symlinks are listed, not "
            f"followed. At most {MAX_ENTRIES} results.",
            schema({"pattern": {"type": "string", "minLength": 1}, "path": _PATH}, ["pattern"]),
            timeout,
            out_cap,
            search.glob,
        ),
        Tool(
            "grep",
            "Search file contents with a Python regular expression (re syntax); returns matching "
            "lines as 'path:line:text'. path is a file or directory (default: the workspace); "
            "glob keeps files whose name matches (or whose path under path, if the glob has a "
            "'/'), e.g. '*.py'. Binary files and symlinks are skipped. "
            f"At most {MAX_ENTRIES} lines.",
            schema(
                {
                    "pattern": {"type": "string", "minLength": 1},
                    "path": _PATH,
                    "glob": {"type": "string", "minLength": 1},
                },
                ["pattern"],
            ),
            timeout,
            out_cap,
            search.grep,
        ),
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
            shell.bash,
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
            shell.python,
        ),
    ]
    return {tool.name: tool for tool in catalogue}


class Toolbox:
    """The tools of one run, called with checked arguments and the time left in the run."""

    def __init__(self, tools: Iterable[Tool], root: str, remaining: Callable[[], float]) -> None:
        """Hold `tools` for the workspace `root` (resolved); `remaining()` is seconds left."""
        self._tools = {tool.name: tool for tool in tools}
        self._root = root
        self._remaining = remaining

    def schemas(self) -> list[ToolSchema]:
        """What the model is told about the tools."""
        return [ToolSchema(t.name, t.description, t.parameters) for t in self._tools.values()]

    def invoke(self, name: str, args: Any) -> dict[str, Any]:
        """Call tool `name`.

        Returns:
            The tool's JSON-able result.

        Raises:
            ToolError: unknown tool, bad arguments, or the tool failed; the message is for the
                model.
        """
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self._tools)) or "none"
            raise ToolError(f"unknown tool '{name}'; the tools available are: {known}")
        problems = check_args(tool, args)
        if problems:
            raise ToolError(f"bad arguments for {name}: " + "; ".join(problems))
        timeout = max(0.0, min(tool.timeout_sec, self._remaining()))
        try:
            return tool.function(Invocation(self._root, args, timeout, tool.output_cap))
        except OSError as exc:
            raise ToolError(describe_os_error(self._root, exc)) from None
        except ValueError as exc:  # e.g. text that cannot be encoded, a NUL in an argument
            raise ToolError(describe(exc)) from None
