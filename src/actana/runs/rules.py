"""The asset rules of this deployment, from its settings."""

from __future__ import annotations

from actana.files.assets import AssetRules
from actana.settings import Settings


def asset_rules(settings: Settings) -> AssetRules:
    return AssetRules(
        max_files=settings.asset_max_files,
        max_file_bytes=settings.asset_max_file_bytes,
        max_total_bytes=settings.asset_max_total_bytes,
    )
