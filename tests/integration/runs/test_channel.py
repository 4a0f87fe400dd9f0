"""A run's channel serves only the sandbox API, over its own unix socket, and only for that run:
a token of another run is refused there even though it is valid."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from actana.db.models import Run, utcnow
from actana.runs.channel import RunChannel, create_sandbox_app
from actana.security import otp
from tests.integration.runs.test_tokens import _running_run


def _tokens(context, run_id: str) -> dict[str, str]:
    with context.database.session() as session:
        return otp.issue_run_tokens(session, run_id, not_after=utcnow() + timedelta(hours=1))


def test_channel_is_pinned_to_its_run(context, tenant):
    run_a = _running_run(context, tenant)
    with context.database.session() as session:
        # A second running run of the same agent.
        row = session.get(Run, run_a)
        run_b = Run(
            **{c.name: getattr(row, c.name) for c in Run.__table__.columns}
            | {"id": "run_" + "b" * 20}
        )
        session.add(run_b)
    tokens_a = _tokens(context, run_a)
    tokens_b = _tokens(context, "run_" + "b" * 20)

    async def scenario() -> dict[str, int]:
        channel = RunChannel(create_sandbox_app(context), "run_" + "b" * 20)
        await channel.start()
        try:
            assert oct(channel.socket_path.stat().st_mode & 0o777) in ("0o666", "0o777")
            transport = httpx.AsyncHTTPTransport(uds=str(channel.socket_path))
            async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
                other = await client.get(
                    "/sandbox/v1/env", headers={"Authorization": f"Bearer {tokens_a['setup']}"}
                )
                own = await client.get(
                    "/sandbox/v1/env", headers={"Authorization": f"Bearer {tokens_b['setup']}"}
                )
                public = await client.get(
                    f"/api/v1/workspaces/{tenant.id}",
                    headers={"Authorization": f"Bearer {tenant.api_key}"},
                )
                docs = await client.get("/docs")
            return {
                "other": other.status_code,
                "own": own.status_code,
                "public": public.status_code,
                "docs": docs.status_code,
            }
        finally:
            await channel.stop()
            assert not channel.directory.exists()

    codes = asyncio.run(scenario())
    assert codes == {"other": 401, "own": 200, "public": 404, "docs": 404}
    # Run A's setup token was refused on B's channel, but it is not spent by that: A can use it.
    with context.database.session() as session:
        assert otp.redeem(session, tokens_a["setup"], "setup", run_id=run_a) == run_a
