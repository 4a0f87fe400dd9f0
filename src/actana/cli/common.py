"""What every command needs: settings, a started-up context, and clean failure output."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from actana.api.context import AppContext
from actana.bootstrap import build_context
from actana.exceptions import ActanaError
from actana.settings import Settings

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error the user can act on and exit non-zero."""
    # The message is text, not markup: escape it, and keep `:x:` from turning into an emoji.
    err_console.print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True, emoji=False
    )
    raise typer.Exit(code)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        fail(f"invalid ACTANA_* setting: {exc}")


def start_context(settings: Settings | None = None) -> AppContext:
    """Settings → keys → database → migrations → key check, or a clear error and exit 2."""
    try:
        return build_context(settings or load_settings())
    except ActanaError as exc:
        fail(exc.message)


def is_tty() -> bool:
    return sys.stdout.isatty()
