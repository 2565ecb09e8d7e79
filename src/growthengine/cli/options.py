"""What every ``growth`` command shares: options, the console, one-line errors, settings from flags."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from growthengine.settings import Settings, load_settings

console = Console(stderr=True)
out = Console()

DbOption = Annotated[str | None, typer.Option("--db", help="sqlite:///path or postgresql://... (GROWTH_DB_URL)")]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML file with settings, segments, flows")]


class CliError(Exception):
    """A failure to report as one clear line."""


def setup_logging(settings: Settings | None = None, *, default_level: int = logging.WARNING) -> None:
    """Logs on standard error: text, or JSON lines with ``GROWTH_LOG_FORMAT=json``; ``GROWTH_LOG_LEVEL`` sets the
    level, else ``default_level`` (WARNING: a command that reads says nothing but its answer; serve: INFO)."""
    from growthengine.observability.logs import configure_logging

    settings = settings or Settings()
    try:
        configure_logging(settings.log_format, settings.log_level, default_level=default_level, stream=sys.stderr)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def cli_settings(db: str | None, config: Path | None, **overrides: object) -> Settings:
    if config is not None and not config.exists():
        raise CliError(f"config file {config} does not exist")
    try:
        return load_settings(config, db_url=db, **overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise CliError(f"settings: {problems}") from None
