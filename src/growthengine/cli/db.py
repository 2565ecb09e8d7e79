"""``growth db upgrade|current|backup``: the schema, explicitly, and a copy of an embedded database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from growthengine.cli.options import CliError, ConfigOption, DbOption, cli_settings, console, out, setup_logging
from growthengine.settings import Settings
from growthengine.storage.unit_of_work import Store

app = typer.Typer(help="The database: schema revision, upgrade, backup.", no_args_is_help=True)

PG_DUMP_HINT = ("growth db backup copies SQLite databases; for PostgreSQL use its own tool, for example "
                "pg_dump --format=custom --file growth.dump 'postgresql://...' (restore with pg_restore)")


def _settings(db: str | None, config: ConfigOption) -> Settings:
    settings = cli_settings(db, config)
    setup_logging(settings)
    return settings


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL)."""
    from growthengine.storage.database import normalize_url

    sa_url, dialect = normalize_url(url)
    if dialect != "sqlite":
        return None
    database = make_url(sa_url).database
    if not database or database == ":memory:":
        raise CliError("an in-memory SQLite database has nothing to read or copy")
    return Path(database).expanduser()


def _open_existing(url: str) -> Store:
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        raise CliError(f"no database at {path} (growth db upgrade or growth serve makes one)")
    return Store.open(url, migrate_schema=False)


@app.command("current")
def current(db: DbOption = None, config: ConfigOption = None) -> None:
    """The schema revision of the database, and whether it is the newest this engine ships."""
    from growthengine.storage.revisions import schema_state

    store = _open_existing(_settings(db, config).db_url)
    try:
        state = schema_state(store)
    finally:
        store.close()
    if state.up_to_date:
        out.print(f"{state.current} (head: the newest this engine ships)")
    elif state.current is None:
        out.print(f"no schema yet (head is {state.head}; growth db upgrade makes it)")
    else:
        out.print(f"{state.current} (behind: head is {state.head}; run growth db upgrade)")


@app.command("upgrade")
def upgrade(db: DbOption = None, config: ConfigOption = None) -> None:
    """Bring the schema to the newest revision (growth serve and growth worker also do this at start)."""
    from growthengine.storage import revisions

    store = Store.open(_settings(db, config).db_url, migrate_schema=False)
    try:
        before, after = revisions.upgrade(store)
    finally:
        store.close()
    if before.current == after.current:
        out.print(f"already at {after.current} (head)")
    else:
        out.print(f"upgraded {before.current or 'an empty database'} -> {after.current}")


@app.command("backup")
def backup(
    file: Annotated[Path, typer.Argument(help="where to write the copy (a SQLite file)")],
    force: Annotated[bool, typer.Option("--force", help="replace FILE if it exists")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """A consistent copy of the SQLite database while the engine runs (SQLite's online backup API)."""
    from growthengine.storage.backup import backup_sqlite

    source = _sqlite_path(_settings(db, config).db_url)
    if source is None:
        raise CliError(PG_DUMP_HINT)
    if not source.exists():
        raise CliError(f"no database at {source}")
    if file.exists() and not force:
        raise CliError(f"{file} exists; pass --force to replace it")
    with console.status(f"copying {source} ..."):
        size = backup_sqlite(source, file)
    out.print(f"backed up {source} to {file} ({size / 1e6:.1f} MB)")
