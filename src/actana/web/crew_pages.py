"""The crew pages (agents, model endpoints, environments, skills, MCP servers) as one router.

Each resource lives in its own `crew_*` module; this one only gathers them, so that the UI's
entry point (`actana.web.routes`) includes the crew with a single line.
"""

from __future__ import annotations

from fastapi import APIRouter

from actana.web import crew_agents, crew_endpoints, crew_environments, crew_mcp, crew_skills

router = APIRouter()
for module in (crew_agents, crew_endpoints, crew_environments, crew_skills, crew_mcp):
    router.include_router(module.router)
