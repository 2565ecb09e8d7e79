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


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def cli_settings(db: str | None, config: Path | None, **overrides: object) -> Settings:
    if config is not None and not config.exists():
        raise CliError(f"config file {config} does not exist")
    try:
        return load_settings(config, db_url=db, **overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise CliError(f"settings: {problems}") from None
