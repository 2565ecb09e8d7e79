"""``growth check-config FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from growthengine.cli.options import console, out
from growthengine.config.errors import ConfigError
from growthengine.config.loader import load_config


def check_config(file: Annotated[Path, typer.Argument(help="YAML config with segments, flows and templates")]) -> None:
    """Validate segments, flows and templates (laid over the shipped defaults, as the engine reads them); lists every
    problem in one run, several in one item too, each with the file, the line, the path inside it and what is
    wrong."""
    try:
        config = load_config(file)
    except ConfigError as exc:
        for issue in exc.issues:
            console.print(f"[red]error:[/] {issue}", highlight=False, soft_wrap=True)
        count = len(exc.issues)
        console.print(f"{file}: {count} problem{'s' if count != 1 else ''}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    templates = len(config.templates.sources()) if config.templates is not None else 0
    out.print(f"{file}: OK ({len(config.segments)} segments, {len(config.flows)} flows, {templates} templates, "
              "with the shipped defaults)", highlight=False, soft_wrap=True)
