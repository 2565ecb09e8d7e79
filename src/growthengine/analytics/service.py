"""The analytics box wired into an engine: rollups computed per batch, segment-size snapshots kept.

Message status changes reach the rollups through ``message_events`` (appended by the send ledger's writers), read by
the pipeline after its stages each batch (:meth:`KpiListener.run`). Conversions, unsubscribes and merges arrive in
the event log: :class:`KpiListener` is the pipeline's ``analytics`` stage too. Both recompute the users concerned in
SQL (``rollups.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from growthengine.analytics.definitions import CONVERSION_EVENT, UNSUBSCRIBE_EVENT, KpiConfig, local_day, zone
from growthengine.analytics.report import build_report, day_span
from growthengine.analytics.rollups import KpiRollups
from growthengine.clock import Clock, to_us
from growthengine.domain.events import Event
from growthengine.domain.profiles import Profile
from growthengine.engine import Engine
from growthengine.segments.engine import SegmentEngine
from growthengine.storage.timer_store import Timer
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

SNAPSHOT_TIMER = "segment_snapshot"
SNAPSHOT_KEY = "segment_snapshot:daily"
SNAPSHOT_AT = dt.time(23, 55)  # local: the day's size, late enough to include the day's changes


class KpiListener:
    """The analytics stage (conversions, unsubscribes, merges) and the daily segment-size snapshot."""

    def __init__(self, segments: SegmentEngine, clock: Clock, config: KpiConfig) -> None:
        self.segments = segments
        self.clock = clock
        self.config = config
        self.rollups = KpiRollups(config)
        self.name = "kpi_rollups"

    def on_events(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        """Purchases and unsubscribes: their users' credits are worked out again after the stages (:meth:`run`)."""
        self.rollups.mark(e.user_id for e in events
                          if e.type == "track" and e.name in (CONVERSION_EVENT, UNSUBSCRIBE_EVENT))

    def on_merge_commands(self, tx: Tx, commands: list[Event]) -> None:
        """An anonymous history was folded into these users: their purchases may now credit their messages."""
        self.rollups.mark(command.user_id for command in commands)

    def run(self, tx: Tx, partitions: Sequence[int], every_partition: bool) -> int:
        """The pipeline's tail: the message changes since the last batch."""
        return self.rollups.run(tx, partitions, every_partition)

    def snapshot(self, tx: Tx, at: dt.datetime) -> dict[str, int]:
        """Record every configured segment's size now, under today's local date."""
        found = tx.segments.sizes()
        sizes = {key: found.get(key, 0) for key in self.segments.segments}
        tx.kpis.snapshot_segments(local_day(to_us(at), zone(self.config)), sizes, to_us(at))
        return sizes

    def on_snapshot_timers(self, tx: Tx, timers: list[Timer], due: dt.datetime) -> None:
        self.snapshot(tx, due)
        # After downtime on the real clock, the next one is tomorrow's, not each missed day's.
        tx.timers.schedule(SNAPSHOT_TIMER, SNAPSHOT_KEY, self.next_snapshot_us(max(due, self.clock.now())), {})

    def next_snapshot_us(self, after: dt.datetime) -> int:
        local = after.astimezone(zone(self.config))
        candidate = dt.datetime.combine(local.date(), SNAPSHOT_AT, tzinfo=local.tzinfo)
        if candidate <= local:
            candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), SNAPSHOT_AT, tzinfo=local.tzinfo)
        return to_us(candidate)


def kpi_listener(engine_settings: Any, segments: SegmentEngine, clock: Clock) -> KpiListener:
    """The analytics stage for these settings."""
    return KpiListener(segments, clock, KpiConfig(engine_settings.attribution_days, engine_settings.business_timezone))


def start_analytics(engine: Engine, listener: KpiListener) -> None:
    """Book the daily snapshot and rebuild stale rollups (the stage itself is wired in ``bootstrap``)."""
    config = listener.config
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        stored = tx.kpis.stored_config()
        if stored != config:
            tx.kpis.save_config(config)
            counted = listener.rollups.rebuild(tx)
            log.info("KPI rollups rebuilt for %s (%d users)", config.as_dict(), counted)
        if tx.timers.get(SNAPSHOT_KEY) is None:
            tx.timers.schedule(SNAPSHOT_TIMER, SNAPSHOT_KEY, listener.next_snapshot_us(now), {})
        listener.snapshot(tx, now)


def kpi_report(engine: Engine, *, flow: str | None = None, start: str | None = None,
               end: str | None = None) -> dict[str, Any]:
    """The KPI report for a span of local days (raises ``TimeFormatError`` on a bad ``start``/``end``)."""
    with engine.store.transaction() as tx:
        tz = zone(tx.kpis.config())
        first, last = day_span(engine.clock.now().astimezone(tz).date(), tz, start, end)
        return build_report(tx, first, last, flow)


def snapshot_segments(engine: Engine) -> dict[str, int]:
    """An on-demand snapshot of segment sizes (the dashboard's button)."""
    config = KpiConfig(engine.settings.attribution_days, engine.settings.business_timezone)
    listener = KpiListener(engine.segments, engine.clock, config)
    with engine.store.transaction() as tx:
        return listener.snapshot(tx, engine.clock.now())
