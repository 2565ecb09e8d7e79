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
