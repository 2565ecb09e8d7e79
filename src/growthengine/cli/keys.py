"""``growth keys create|list|revoke``: named API keys, kept hashed in the database, several active at once.

Rotation without a failed request: ``growth keys create NEW``, move the clients to the new key, then
``growth keys revoke OLD`` (running engines stop accepting it within ``key_refresh_s``, 2 s by default).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from growthengine.cli.options import CliError, ConfigOption, DbOption, cli_settings, console, out, setup_logging
from growthengine.storage.unit_of_work import Store

app = typer.Typer(help="API keys: create, list and revoke named admin and write keys.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="a name for the key, e.g. ios-app or ops-2026")]


def _store(db: str | None, config: ConfigOption) -> Store:
    settings = cli_settings(db, config)
    setup_logging(settings)
    return Store.open(settings.db_url)


@app.command("create")
def create(
    name: NameArgument,
    role: Annotated[str, typer.Option(help="admin (every route) or write (ingestion only)")] = "write",
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Make a key. The key alone goes to standard output (KEY=$(growth keys create NAME)); it is shown once."""
    from growthengine.keys import KeyCommandError, create_key

    if role not in ("admin", "write"):
        raise CliError(f"--role is admin or write, not {role!r}")
    store = _store(db, config)
    try:
        key = create_key(store, name, "admin" if role == "admin" else "write")
    except KeyCommandError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    console.print(f"{role} key {name!r} made; it is shown once, only its SHA-256 is kept (growth keys list):")
    print(key, flush=True)


@app.command("list")
def list_keys(db: DbOption = None, config: ConfigOption = None) -> None:
    """Every named key: role, the key's last characters, when it was made and revoked."""
    from growthengine.keys import stored_keys

    settings = cli_settings(db, config)
    setup_logging(settings)
    store = Store.open(settings.db_url)
    try:
        keys = stored_keys(store)
    finally:
        store.close()
    table = Table(title="API keys")
    for column in ("name", "role", "key", "created", "state"):
        table.add_column(column)
    for key in keys:
        state = "active" if key.active else f"revoked {key.revoked}"
        table.add_row(key.name, key.role, f"…{key.hint}", key.created, state)
    out.print(table)
    extra = []
    if settings.api_key:
        extra.append("GROWTH_API_KEY (admin)")
    if settings.write_keys:
        extra.append(f"GROWTH_WRITE_KEYS ({len(settings.write_keys)} write)")
    if extra:
        out.print(f"Also accepted, from this environment: {', '.join(extra)}.")


@app.command("revoke")
def revoke(
    name: NameArgument,
    force: Annotated[bool, typer.Option("--force", help="revoke even the last named admin key")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a key: running engines refuse it within a few seconds (key_refresh_s)."""
    from growthengine.keys import KeyCommandError, revoke_key

    store = _store(db, config)
    try:
        key = revoke_key(store, name, allow_last_admin=force)
    except KeyCommandError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    out.print(f"revoked {key.role} key {key.name!r} (…{key.hint}) at {key.revoked}")
