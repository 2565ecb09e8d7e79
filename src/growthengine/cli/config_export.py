"""``growth config export``: the merged config (shipped defaults, the config file, the versions stored over the API)
as one YAML file, so that changes made over the API can be reviewed as files (CONTRACT.md 11)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from growthengine.cli.options import CliError, ConfigOption, DbOption, cli_settings, console, out, setup_logging
from growthengine.config.errors import ConfigError
from growthengine.config.versions import export_yaml, file_changes, load_merged
from growthengine.storage.unit_of_work import Store

app = typer.Typer(help="The merged, versioned config.", no_args_is_help=True)



@app.callback()
def config_group() -> None:
    """The merged, versioned config (segments, flows and templates)."""


OutputOption = Annotated[Path | None, typer.Option("-o", "--output", help="write here (default: standard output)")]


@app.command("export")
def export(db: DbOption = None, config: ConfigOption = None, output: OutputOption = None) -> None:
    """Every segment, flow and template of the merged config as YAML (it passes growth check-config as is)."""
    settings = cli_settings(db, config)
    setup_logging(settings)
    store = Store.open(settings.db_url)
    try:
        with store.read() as tx:
            path = settings.config_file
            merged = load_merged(tx.conn, path, changes=file_changes(tx.conn, path) if path is not None else None)
    except ConfigError as exc:
        for issue in exc.issues:
            console.print(f"[red]error:[/] {issue}", highlight=False, soft_wrap=True)
        raise CliError(f"the merged config has {len(exc.issues)} problem(s); nothing exported") from None
    finally:
        store.close()
    text = export_yaml(merged)
    if output is None:
        out.print(text, end="", highlight=False, markup=False, soft_wrap=True)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}: {len(merged.segments)} segments, {len(merged.flows)} flows, "
                      f"{len(merged.templates.keys()) if merged.templates else 0} templates", highlight=False)
