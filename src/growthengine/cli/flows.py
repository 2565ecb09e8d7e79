"""``growth flows list|show``."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
from rich.table import Table

from growthengine.analytics.definitions import WENT_OUT
from growthengine.cli.options import CliError, ConfigOption, DbOption, cli_settings, out, setup_logging
from growthengine.engine import Engine
from growthengine.flows.describe import describe_step, describe_trigger
from growthengine.flows.model import iter_steps
from growthengine.flows.paths import DONE

app = typer.Typer(help="Flows: their steps and live counts.", no_args_is_help=True)


def _engine(db: str | None, config: ConfigOption) -> Engine:
    from growthengine.bootstrap import build_command_engine

    setup_logging()
    return build_command_engine(cli_settings(db, config))


@app.command("list")
def list_flows(db: DbOption = None, config: ConfigOption = None) -> None:
    """Every flow with its trigger and run counts."""
    engine = _engine(db, config)
    try:
        table = Table(title="Flows")
        for column in ("key", "name", "trigger", "live", "completed", "exited", "messages"):
            numeric = column in ("live", "completed", "exited", "messages")
            table.add_column(column, justify="right" if numeric else "left")
        for key, flow in engine.flows.flows.items():
            counts = engine.flow_counts(key)
            by_status: Counter[str] = Counter()
            for (status, _cursor), n in counts.items():
                by_status[status] += n
            sent = len(engine.messages(flow=key, limit=100_000))
            table.add_row(key, flow.name, describe_trigger(flow), f"{by_status['active']:,}",
                          f"{by_status['completed']:,}", f"{by_status['exited']:,}", f"{sent:,}")
        out.print(table)
    finally:
        engine.close()


@app.command("show")
def show_flow(key: Annotated[str, typer.Argument(help="flow key, e.g. cart_abandonment")],
              db: DbOption = None, config: ConfigOption = None) -> None:
    """A flow's steps with how many runs wait at each and what each sent."""
    engine = _engine(db, config)
    try:
        flow = engine.flows.flows.get(key)
        if flow is None:
            raise CliError(f"no flow {key!r}; known: {', '.join(engine.flows.flows)}")
        out.print(f"[bold]{flow.name}[/] ({key}, version {flow.version}): {describe_trigger(flow)}")
        if flow.description:
            out.print(flow.description)
        counts = engine.flow_counts(key)
        messages = engine.messages(flow=key, limit=1_000_000)
        table = Table(title="Steps")
        for column in ("step", "does", "runs waiting here", "messages", "sent", "held/suppressed"):
            table.add_column(column)
        waiting_at = Counter[str]()
        for (status, cursor), n in counts.items():
            if status == "active":
                waiting_at[cursor.split(".")[0]] += n
        for index, step in enumerate(flow.steps):
            of_step = [m for m in messages if m.step == step.name]
            sent = sum(1 for m in of_step if m.status in WENT_OUT)  # "sent" as the KPIs define it
            held = Counter(m.reason or m.status for m in of_step if m.status in ("suppressed", "scheduled"))
            does = describe_step(step)
            table.add_row(step.name, does, f"{waiting_at.get(str(index), 0):,}", f"{len(of_step):,}", f"{sent:,}",
                          ", ".join(f"{r}: {n}" for r, n in held.items()) or "-")
        out.print(table)
        done = sum(n for (status, cursor), n in counts.items() if cursor == DONE)
        out.print(f"finished runs: {done:,}; steps in all, branches included: {len(iter_steps(flow.steps))}")
    finally:
        engine.close()
