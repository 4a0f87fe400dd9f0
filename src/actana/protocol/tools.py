"""The built-in tools by name: the catalogue both sides agree on.

The runtime implements them (actana.runtime.tools); the server validates an agent's `tools`
list against these names, so that a typo is a 422 when the agent is saved, not a silently
missing tool in every run. The runtime's catalogue is this very list
(actana.runtime.tools.registry.CATALOGUE_NAMES).
"""

from __future__ import annotations

BUILTIN_TOOLS: tuple[str, ...] = (
    # files
    "read_file",
    "write_file",
    "edit_file",
    "multi_edit",
    # finding things
    "list_dir",
    "glob",
    "grep",
    "tree",
    "file_info",
    # moving things, comparing and patching
    "move_path",
    "delete_path",
    "diff_files",
    "apply_patch",
    # structured data and archives
    "json_query",
    "read_table",
    "archive",
    # running code
    "bash",
    "python",
    # the network (subject to the environment's network policy)
    "http_request",
    "web_fetch",
    # the agent's own bookkeeping
    "skill",
    "todo",
    "finish",
)
"""All 23 built-in tools, in the order they are offered to the model."""

DEFAULT_TOOLS: tuple[str, ...] = BUILTIN_TOOLS
"""An agent whose `tools` is null gets all of them (`skill` only when it has skills: the runtime
leaves it out otherwise, as there would be nothing to load)."""
