"""The built-in tool catalogue by name, the tools a run is offered, and the `Toolbox` that calls
them safely.

The catalogue is assembled from one module per family, each exposing `tools(limits)`; the
names and their order are the contract (`CATALOGUE_NAMES`, documented in docs/tools.md).
Descriptions are written for the model: what the tool does, what it returns and what its limits
are, so that it can act on a truncation or a refusal without guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from actana.protocol.payloads import RunLimits, ToolSchema
from actana.protocol.tools import BUILTIN_TOOLS
from actana.protocol.tools import DEFAULT_TOOLS as PROTOCOL_DEFAULT_TOOLS
from actana.runtime.emit import describe
from actana.runtime.tools import (
    archive,
    data,
    files,
    manage,
    patch,
    plan,
    search,
    shell,
    skill,
    web,
)
from actana.runtime.tools.base import Invocation, Tool, ToolContext, ToolError, check_args
from actana.runtime.tools.paths import describe_os_error

# Every built-in tool, in the order the model is shown them, and the default set: the names are
# the contract shared with the server (which checks an agent's `tools` against them).
CATALOGUE_NAMES: tuple[str, ...] = BUILTIN_TOOLS
# `skill` is still only offered to a run that has skills (see `offered_tools`): that depends on
# the run, not the agent.
DEFAULT_TOOLS: tuple[str, ...] = PROTOCOL_DEFAULT_TOOLS

_FAMILIES = (files, search, manage, patch, data, archive, shell, web, skill, plan)


def build_tools(limits: RunLimits) -> dict[str, Tool]:
    """Every built-in tool, with the run's limits applied, in `CATALOGUE_NAMES` order.

    Args:
        limits: the run's limits (tool timeout, output and read caps).

    Returns:
        Tools by name (a family not written yet simply contributes none).
    """
    built = {tool.name: tool for family in _FAMILIES for tool in family.tools(limits)}
    strays = sorted(set(built) - set(CATALOGUE_NAMES))
    if strays:  # a programming error: the names are a documented contract
        raise RuntimeError(f"tools missing from CATALOGUE_NAMES: {strays}")
    return {name: built[name] for name in CATALOGUE_NAMES if name in built}


def offered_tools(
    names: Sequence[str] | None, catalogue: dict[str, Tool], context: ToolContext
) -> tuple[list[Tool], list[str]]:
    """The built-in tools a run is offered, from the names its config lists.

    This is where `skill` is filtered out of a run without skills (a tool that could only
    refuse would just cost the model a round), whatever the agent enabled.

    Args:
        names: the enabled tool names (the run config's `tools`); None means `DEFAULT_TOOLS`.
        catalogue: from `build_tools`.
        context: the run's tool context (its skills decide about `skill`).

    Returns:
        (the tools, in the order named; the names this runtime does not have).
    """
    wanted = DEFAULT_TOOLS if names is None else names
    unknown = [name for name in wanted if name not in catalogue]
    offered = [
        catalogue[name]
        for name in dict.fromkeys(wanted)  # a name listed twice is offered once
        if name in catalogue and (name != "skill" or context.skills)
    ]
    return offered, unknown


class Toolbox:
    """The tools of one run, called with checked arguments and the time left in the run.

    Besides the built-in tools it holds dynamic ones (MCP tools, `mcp__<server>__<tool>`, whose
    schemas come from third-party servers); `check_args` copes with any JSON schema.
    """

    def __init__(
        self,
        tools: Iterable[Tool],
        root: str,
        remaining: Callable[[], float],
        context: ToolContext | None = None,
    ) -> None:
        """Hold `tools` for the workspace `root` (resolved); `remaining()` is seconds left.

        Raises:
            ValueError: two tools share a name (the model could not tell them apart).
        """
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)
        self._root = root
        self._remaining = remaining
        self.context = context if context is not None else ToolContext()

    def add(self, tool: Tool) -> None:
        """Offer one more tool (e.g. an MCP tool discovered at startup).

        Raises:
            ValueError: a tool of that name is already there.
        """
        if tool.name in self._tools:
            raise ValueError(f"two tools are named '{tool.name}'")
        self._tools[tool.name] = tool

    def names(self) -> list[str]:
        """The names of the tools held, in the order the model sees them."""
        return list(self._tools)

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
            Finish: the `finish` tool ended the run (see `actana.runtime.agent`).
        """
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self._tools)) or "none"
            raise ToolError(f"unknown tool '{name}'; the tools available are: {known}")
        problems = check_args(tool, args)
        if problems:
            raise ToolError(f"bad arguments for {name}: " + "; ".join(problems))
        timeout = max(0.0, min(tool.timeout_sec, self._remaining()))
        invocation = Invocation(self._root, args, timeout, tool.output_cap, self.context)
        try:
            return tool.function(invocation)
        except OSError as exc:
            raise ToolError(describe_os_error(self._root, exc)) from None
        except ValueError as exc:  # e.g. text that cannot be encoded, a NUL in an argument
            raise ToolError(describe(exc)) from None
