"""The built-in tools the agent calls (23, one module per family), all confined to the workspace.

`registry.build_tools` builds them with the run's limits, `registry.offered_tools` picks the ones
a run gets, and `registry.Toolbox` calls them (and the run's MCP tools) with checked arguments.
The catalogue is documented in docs/tools.md.
"""
