"""``growth users erase ID``: a user's erasure (CONTRACT.md 10, PDPA), as ``DELETE /v1/users/{userId}`` does it."""

from __future__ import annotations

from typing import Annotated

import typer

from growthengine.cli.options import CliError, ConfigOption, DbOption, cli_settings, out, setup_logging

app = typer.Typer(help="Users: erasure (PDPA).", no_args_is_help=True)


@app.command("erase")
def erase(
    user_id: Annotated[str, typer.Argument(metavar="ID", help="the userId to erase")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Erase a user: profile, identities and events now; the workers clear segments, runs, inbox, consent history
    and models from the tombstone; messages stay counted under a one-way token; ads audiences get a removal."""
    from growthengine.bootstrap import build_engine

    settings = cli_settings(db, config)
    setup_logging(settings)
    engine = build_engine(settings)
    try:
        receipt = engine.erase_user(user_id, "cli")
    finally:
        engine.close()
    if receipt is None:
        raise CliError(f"no user {user_id!r} (unknown, or already erased)")
    out.print(f"erased user {user_id!r}: profile, identities and {receipt.events_deleted} events deleted, "
              f"{receipt.audience_removals} ads audience removal(s) queued; the workers clear the rest "
              f"(erasure token {receipt.token})", soft_wrap=True)
