"""The KPI summary of a simulation run: what the marketplace did and what the engine made of it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from growthengine.ingest.service import IngestResult
from growthengine.simulate.marketplace import MarketStats
from growthengine.simulate.outcomes import FlowUplift
from growthengine.timefmt import format_instant

TRACKED_ORDER = (
    "identify", "app_opened", "item_viewed", "location_searched", "add_to_cart", "remove_from_cart", "purchase",
    "item_sold", "favorite_added", "favorite_removed", "listing_created", "listing_price_changed",
    "seller_registered", "message_opened", "message_clicked", "unsubscribed",
)


@dataclass
class SimulationReport:
    users: int
    days: float
    seed: int
    start: dt.datetime
    stats: MarketStats
    end: dt.datetime | None = None
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    first_rejection: str | None = None
    leftover: int = 0
    segment_sizes: dict[str, int] | None = None
    message_counts: dict[str, int] | None = None
    uplift: list[FlowUplift] = field(default_factory=list)
    attribution_days: int = 3
    control_pct: float = 0.0
    experiments: list[dict[str, Any]] = field(default_factory=list)
    channel_switches: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, result: IngestResult) -> None:
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.rejected += len(result.rejected)
        if result.rejected and self.first_rejection is None:
            self.first_rejection = result.rejected[0].error


def _as_counts(value: Any) -> dict[str, int] | None:
    if callable(value):
        value = value()
    if isinstance(value, Mapping):
        return {str(k): int(v) for k, v in value.items()}
    return None


def engine_figures(engine: Any) -> tuple[dict[str, int] | None, dict[str, int] | None]:
    """Segment sizes and messages by status, from whichever of them the engine can report."""
    return (_as_counts(getattr(engine, "segment_sizes", None)),
            _as_counts(getattr(engine, "message_counts", None)))


def _baht(amount: float) -> str:
    return f"฿{amount:,.2f}"


def _points(value: float) -> str:
    return f"{value * 100:+.2f}"


def _interval_points(iv: Any) -> str:
    mark = " *" if iv.significant else ""
    return f"{_points(iv.value)} pts [{_points(iv.low)}, {_points(iv.high)}]{mark}"


def _interval_baht(iv: Any) -> str:
    mark = " *" if iv.significant else ""
    return f"{'+' if iv.value >= 0 else '-'}฿{abs(iv.value):,.2f} [{iv.low:+,.2f}, {iv.high:+,.2f}]{mark}"


def print_ai_layer(report: SimulationReport, console: Console) -> None:
    """What the AI layer earned: per flow uplift against the control group, the experiments' verdicts, the
    channel switches."""
    table = Table(title=f"Uplift per flow against the control group (purchases within {report.attribution_days} "
                        f"days of a user's first message; 95 % intervals; * excludes zero)", title_justify="left")
    for column in ("flow", "reached / control users", "conversion reached / control", "conversion uplift",
                   "GMV per user reached / control", "GMV uplift per user"):
        table.add_column(column, justify="left" if column == "flow" else "right")
    for u in report.uplift:
        if u.conversion is None:
            table.add_row(u.flow, f"{u.treated:,} / {u.control:,}", f"{u.treated_rate:.2%} / -",
                          "no control group", "", "")
            continue
        gmv_treated = u.treated_gmv / u.treated if u.treated else 0.0
        gmv_control = u.control_gmv / u.control if u.control else 0.0
        table.add_row(u.flow, f"{u.treated:,} / {u.control:,}", f"{u.treated_rate:.2%} / {u.control_rate:.2%}",
                      _interval_points(u.conversion), f"{_baht(gmv_treated)} / {_baht(gmv_control)}",
                      _interval_baht(u.gmv_per_user) if u.gmv_per_user is not None else "")
    if not report.uplift:
        table.add_row("(no flow reached a user with a whole attribution window in the run)", "", "", "", "", "")
    console.print(table)
    if report.control_pct:
        console.print(f"control group: {report.control_pct:g} % of users get no marketing (--control), plus each "
                      "flow's own holdout")

    experiments = Table(title="Experiments (always-valid test; metric: first opens)", title_justify="left")
    for column in ("experiment", "state", "variants: opened / sent", "verdict"):
        experiments.add_column(column)
    for e in report.experiments:
        arms = ", ".join(f"{v['name']} {v['conversions']:,}/{v['sends']:,}" for v in e["variants"])
        verdict = e["verdict"]
        said = verdict["winner"] if verdict["status"] == "winner" else verdict["status"]
        experiments.add_row(e["key"], e["state"], arms, f"{said}: {verdict['reason']}")
    if not report.experiments:
        experiments.add_row("(none configured)", "", "", "")
    console.print(experiments)

    sw = report.channel_switches
    if sw:
        console.print(f"channel scores (SPEC 4.C): {sw.get('switched', 0):,} promotional emails went by push to "
                      f"{sw.get('users', 0):,} users who ignore email ({sw.get('opened', 0):,} opened); "
                      f"{sw.get('qualifying', 0):,} users have email < 0.1 and push > 0.8 at the end")


def print_report(report: SimulationReport, console: Console, *, elapsed_s: float | None = None) -> None:
    stats = report.stats
    end = format_instant(report.end) if report.end else "?"
    summary = Table(title="Simulated JaiKod marketplace", show_header=False, title_justify="left")
    summary.add_column("what", style="bold")
    summary.add_column("value", justify="right")
    summary.add_row("users", f"{report.users:,}")
    summary.add_row("simulated time", f"{report.days:g} days, {format_instant(report.start)} → {end}")
    summary.add_row("seed", str(report.seed))
    summary.add_row("events accepted", f"{report.accepted:,}")
    if report.duplicates or report.rejected:
        summary.add_row("duplicates / rejected", f"{report.duplicates:,} / {report.rejected:,}")
    summary.add_row("purchases", f"{stats.purchases:,}")
    summary.add_row("GMV", _baht(stats.gmv))
    if stats.purchases:
        summary.add_row("average order", _baht(stats.gmv / stats.purchases))
    summary.add_row("messages got / opened / clicked",
                    f"{stats.messages_received:,} / {stats.messages_opened:,} / {stats.messages_clicked:,}")
    summary.add_row("purchases after a message", f"{stats.message_purchases:,} ({_baht(stats.message_gmv)})")
    summary.add_row("unsubscribes", f"{stats.unsubscribes:,}")
    if elapsed_s is not None:
        summary.add_row("run time", f"{elapsed_s:.1f} s")
    console.print(summary)

    events = Table(title="Events by name", title_justify="left")
    events.add_column("event")
    events.add_column("count", justify="right")
    names = [n for n in TRACKED_ORDER if n in stats.events] + sorted(set(stats.events) - set(TRACKED_ORDER))
    for name in names:
        events.add_row(name, f"{stats.events[name]:,}")
    console.print(events)

    if report.segment_sizes is not None:
        segments = Table(title="Segments", title_justify="left")
        segments.add_column("segment")
        segments.add_column("size", justify="right")
        for key, size in sorted(report.segment_sizes.items()):
            segments.add_row(key, f"{size:,}")
        console.print(segments)
    if report.message_counts is not None:
        messages = Table(title="Messages by status", title_justify="left")
        messages.add_column("status")
        messages.add_column("count", justify="right")
        for key, count in sorted(report.message_counts.items()):
            messages.add_row(key, f"{count:,}")
        console.print(messages)
    print_ai_layer(report, console)
