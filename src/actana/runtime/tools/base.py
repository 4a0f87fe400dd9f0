"""What a tool is, how it is called, and how it fails.

A tool is a plain function from an `Invocation` (the checked arguments plus the limits that apply
to this call) to a JSON-able dict. It fails by raising `ToolError`, whose message is written for
the model: it says what was wrong and what to do instead. A failed tool is a failed step, fed
back to the model; it never ends the run.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actana.protocol.payloads import NetworkSpec, SkillSpec
from actana.runtime.tools import arguments

# Lists (list_dir, glob, grep) stop at this many entries, with a truncation note.
MAX_ENTRIES = 1000


class ToolError(Exception):
    """A tool call failed; the message tells the model what went wrong.

    Attributes:
        details: optional data to show alongside (e.g. the output a timed-out command produced).
    """

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details


class Finish(Exception):
    """Raised by the `finish` tool: the run ends now, with `message` as its answer.

    It is not a `ToolError`: the agent loop reports the step as succeeded and returns the
    message as if the model had answered without tool calls.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ToolContext:
    """What the tools of one run share beyond their arguments (one per run, built by the runtime
    from its config).

    Attributes:
        network: the environment's network policy (enforced outside, by the egress proxy).
        egress_socket: path of the egress proxy's unix socket as the sandbox sees it, or None
            when the sandbox has none (then network tools refuse).
        skills: the agent's skills (the `skill` tool serves their bodies).
        skills_root: folder holding the materialised bundles, `<skills_root>/<name>/...`.
        state: per-run state of stateful tools (e.g. `todo`), keyed by tool name.
    """

    network: NetworkSpec = field(default_factory=NetworkSpec)
    egress_socket: str | None = None
    skills: list[SkillSpec] = field(default_factory=list)
    skills_root: str | None = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Invocation:
    """One call of a tool.

    Attributes:
        root: the workspace directory, fully resolved (no symlinks); file tools stay inside it.
        args: the arguments, already checked against the tool's schema.
        timeout_sec: seconds this call may take: the tool's own timeout, cut to the time left
            before the run's deadline.
        output_cap: the tool's output cap (bytes of each stream or of file content).
    """

    root: str
    args: dict[str, Any]
    timeout_sec: float
    output_cap: int
    context: ToolContext = field(default_factory=ToolContext)


ToolFunction = Callable[[Invocation], dict[str, Any]]


@dataclass(frozen=True)
class Tool:
    """A tool the model can call.

    Attributes:
        name: the name the model calls it by.
        description: what it does and how to use it, written for the model.
        parameters: JSON schema of the arguments (an object, `additionalProperties: false`).
        timeout_sec: longest a call may run (file tools use it as a time budget for walks).
        output_cap: bytes of output kept (see `Invocation.output_cap`).
        function: the implementation.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    timeout_sec: float
    output_cap: int
    function: ToolFunction


PATH_ARG: dict[str, Any] = {
    "type": "string",
    "description": "Path relative to the workspace directory.",
}


def schema(properties: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    """A closed JSON schema object: unknown arguments are an error the model is told about."""
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def check_args(tool: Tool, args: Any) -> list[str]:
    """Check arguments against the tool's schema; see `actana.runtime.tools.arguments`.

    Returns:
        One problem per line, written for the model; empty when the arguments are fine.
    """
    return arguments.check_args(tool.parameters, args)


def decode_prefix(data: bytes) -> tuple[str, int]:
    """Decode bytes cut at an arbitrary point: invalid bytes are replaced, a character split by
    the cut at the very end is left out.

    Returns:
        (text, number of bytes of `data` the text stands for).
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text = decoder.decode(data, final=False)  # holds back an incomplete trailing sequence
    return text, len(data) - len(decoder.getstate()[0])


def truncation_marker(shown: int, total: int) -> str:
    """The marker appended to output that was cut, saying how much there was."""
    return f"\n[... output truncated: {total} bytes in total, the first {shown} shown]"


def decode_capped(data: bytes, total: int) -> tuple[str, bool]:
    """Decode captured output as UTF-8 (invalid bytes replaced), marking it when it was cut.

    Args:
        data: the bytes kept.
        total: how many bytes there were in all.

    Returns:
        (text, truncated).
    """
    if total <= len(data):
        return data.decode("utf-8", "replace"), False
    text, used = decode_prefix(data)
    return text + truncation_marker(used, total), True


def cap_text(text: str, cap: int) -> tuple[str, bool]:
    """`text` cut to at most `cap` UTF-8 bytes (never inside a character), marked when cut.

    Returns:
        (text, truncated).
    """
    data = text.encode("utf-8", "surrogatepass")
    return decode_capped(data[:cap], len(data))


def cap_lines(lines: list[str], cap: int) -> tuple[str, int, bool]:
    """Whole lines of `lines`, joined by "\\n", as many as fit in `cap` UTF-8 bytes; when some
    are left out the text ends with `truncation_marker`.

    Returns:
        (text, number of lines shown, truncated).
    """
    sizes = [len(line.encode("utf-8", "surrogatepass")) + 1 for line in lines]
    total = sum(sizes)
    if total <= cap:
        return "\n".join(lines), len(lines), False
    shown, used = 0, 0
    while shown < len(lines) and used + sizes[shown] <= cap:
        used += sizes[shown]
        shown += 1
    if shown == 0:  # the first line alone is too long: show its start rather than nothing
        text, _ = cap_text("\n".join(lines), cap)
        return text, 0, True
    return "\n".join(lines[:shown]) + truncation_marker(used, total), shown, True
