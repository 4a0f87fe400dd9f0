"""The workspace's crew definitions: model endpoints, environments, skills, MCP servers, agents.

Each module holds the pydantic schemas (Create / Update / Public) and the service functions the
API routes and the CLI call. Every lookup is scoped to one workspace.
"""
