"""``growth flows list|show``."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
from rich.table import Table

from growthengine.analytics.definitions import WENT_OUT
from growthengine.cli.options import CliError, ConfigOption, DbOption, cli_settings, out, setup_logging
from growthengine.engine import Engine
from growthengine.flows.model import (
    Branch,
    CouponAction,
    EventTrigger,
    Flow,
    RecommendationAction,
    Schedule,
    SegmentEntered,
    Send,
    Step,
    Wait,
    iter_steps,
)
from growthengine.flows.paths import DONE
from growthengine.segments.durations import format_duration_us

app = typer.Typer(help="Flows: their steps and live counts.", no_args_is_help=True)


def _engine(db: str | None, config: ConfigOption) -> Engine:
    from growthengine.bootstrap import build_command_engine

    setup_logging()
    return build_command_engine(cli_settings(db, config))


def describe_trigger(flow: Flow) -> str:
    trigger = flow.trigger
    if isinstance(trigger, SegmentEntered):
        return f"enters {trigger.segment}"
    if isinstance(trigger, Schedule):
        day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[trigger.weekday]
        audience = f" to {trigger.segment}" if trigger.segment else ""
        return f"every {day} {trigger.hour:02d}:{trigger.minute:02d}{audience}"
    assert isinstance(trigger, EventTrigger)
    text = f"event {trigger.event}"
    if trigger.audience:
        text += f" → everyone who {trigger.audience} the {trigger.per}"
    if trigger.unless_event:
        text += f", unless {trigger.unless_event} within the wait"
    return text


def describe_step(step: Step) -> str:
    body = step.body
    if isinstance(body, Send):
        return f"{body.kind} {body.channel}: {body.template}" + (" (high urgency)" if body.urgency == "high" else "")
    if isinstance(body, Wait):
        if body.for_us is not None:
            return f"wait {format_duration_us(body.for_us)}"
        if body.until_offset_us is not None:
            return f"wait until T+{format_duration_us(body.until_offset_us)}"
        assert body.until_local is not None
        return f"wait until {body.until_local[0]:02d}:{body.until_local[1]:02d} local"
    if isinstance(body, CouponAction):
        return f"coupon {body.value:g}{'%' if body.type == 'percent' else ' THB'} valid {body.expiry}"
    if isinstance(body, RecommendationAction):
        return f"recommend {body.limit} listings"
    assert isinstance(body, Branch)
    return "branch"


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
