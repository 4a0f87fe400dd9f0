"""`POST /sandbox/v1/results`: a run's output files, from a hostile sandbox, into its folder."""

from __future__ import annotations

import shutil
from typing import Any

from anyio import to_thread
from fastapi import Request

from actana.api.context import AppContext
from actana.db.models import Run
from actana.exceptions import AuthenticationError
from actana.files.assets import AssetRejected, receive_assets
from actana.runs import storage
from actana.runs.rules import asset_rules
from actana.security import otp

_INVALID = "invalid, expired or already used token"


def _redeem(context: AppContext, token: str, channel_run: str | None) -> tuple[str, str]:
    with context.database.session() as session:
        run_id = otp.redeem(session, token, otp.UPLOAD, run_id=channel_run)
        run = session.get(Run, run_id) if run_id else None
        if run is None or run.status != "running":
            raise AuthenticationError(_INVALID)
        return run.workspace_id, run.id


def _store(context: AppContext, run_id: str, files: list[dict[str, Any]]) -> None:
    with context.database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.output_files = files


async def receive_outputs(
    context: AppContext, request: Request, token: str, channel_run: str | None
) -> dict[str, Any]:
    """Spend the upload token, then stream the files through the asset rules.

    The token is spent before the body is read, so one upload is all a sandbox ever gets; a
    rejected upload stores nothing and says which file broke which rule.
    """
    workspace_id, run_id = await to_thread.run_sync(_redeem, context, token, channel_run)
    dest = storage.outputs_dir(context.settings, workspace_id, run_id)
    dest.mkdir(parents=True, exist_ok=False)
    try:
        stored, _fields = await receive_assets(
            request.stream(),
            request.headers.get("content-type", ""),
            dest,
            asset_rules(context.settings),
        )
    except AssetRejected:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    files = [{"name": a.name, "size": a.size, "sha256": a.sha256} for a in stored]
    await to_thread.run_sync(_store, context, run_id, files)
    return {"files": files}
