"""MCP inside the sandbox: the run's MCP servers as tools, and the `mcp` shim for scripts.

`start_mcp` (in `manager`) is the one entry point. Nothing here imports the `mcp` SDK at import
time: only `stdio`, loaded when a run has stdio servers, does.
"""
