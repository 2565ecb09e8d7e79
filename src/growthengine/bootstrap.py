"""The one place where adapters are built and wired into an engine."""

from __future__ import annotations

import datetime as dt
import logging

from growthengine.clock import Clock, ManualClock, RealClock
from growthengine.config.loader import EngineConfig, load_config
from growthengine.engine import Engine
from growthengine.ingest.service import IngestionService
from growthengine.scheduler.runner import Scheduler
from growthengine.segments.engine import TIMER_KIND as SEGMENT_TIMER
from growthengine.segments.engine import SegmentEngine
from growthengine.settings import Settings
from growthengine.storage.unit_of_work import Store

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The engine cannot start as configured; the message says why."""


def build_clock(settings: Settings) -> Clock:
    if settings.clock == "manual":
        start = settings.clock_start
        if start is None:
            raise StartupError("--clock manual needs --start ISO (for example 2026-01-01T09:00:00+07:00)")
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
        return ManualClock(start)
    return RealClock()


def build_engine(settings: Settings, *, clock: Clock | None = None, store: Store | None = None,
                 config: EngineConfig | None = None) -> Engine:
    """Wire an engine from settings; tests and the simulator may hand in their own clock, store or config."""
    config = config or load_config(settings.config_file)
    clock = clock or build_clock(settings)
    store = store or Store.open(settings.db_url)
    scheduler = Scheduler(store, clock)
    segments = SegmentEngine(config.segments, clock, settings.business_timezone)
    ingestion = IngestionService(
        store, clock, future_tolerance=dt.timedelta(seconds=settings.future_tolerance_s), listeners=[segments]
    )
    scheduler.register(SEGMENT_TIMER, segments.on_timers)
    engine = Engine(settings=settings, clock=clock, store=store, scheduler=scheduler, ingestion=ingestion,
                    config=config, segments=segments)
    engine.backfill_changed_segments()
    log.info("engine wired: %s storage, %s clock, %d segments", store.dialect, clock.mode, len(config.segments))
    return engine
