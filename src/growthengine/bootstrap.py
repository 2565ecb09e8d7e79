"""The one place where adapters are built and wired into an engine."""

from __future__ import annotations

import datetime as dt
import logging

from growthengine import business_time
from growthengine.analytics.service import SNAPSHOT_TIMER, kpi_listener, start_analytics
from growthengine.channels.delivery import DeliveryWorker
from growthengine.channels.providers.bridge import LedgerBridge
from growthengine.channels.registry import build_providers
from growthengine.clock import Clock, ManualClock, RealClock, to_us
from growthengine.config.loader import EngineConfig, load_flow_version
from growthengine.config.versions import load_and_import_once
from growthengine.consent.audit import ConsentAudit
from growthengine.consent.unsubscribe import UnsubscribeLinks, engine_secret
from growthengine.content.coupon_client import HttpCouponEngine
from growthengine.content.coupons import EmbeddedCouponEngine
from growthengine.content.recommendation_client import HttpRecommendationEngine
from growthengine.content.recommendations import PopularInFavouriteCategory
from growthengine.content.templates import load_default_templates
from growthengine.engagement.service import Optimizer
from growthengine.engagement.tracker import EngagementTracker
from growthengine.engine import Engine
from growthengine.erasure.request import ERASE_COMMAND, UserErasure
from growthengine.erasure.stages import (
    erase_flows,
    erase_kpis,
    erase_models,
    retire_tombstones,
    segments_handler,
)
from growthengine.flows.actions import (
    CouponSource,
    EmbeddedCoupons,
    EmbeddedRecommendations,
    RecommendationSource,
    RemoteCoupons,
    RemoteRecommendations,
)
from growthengine.flows.activities import ActivityExecutor
from growthengine.flows.audience_sync import AudienceSync
from growthengine.flows.broadcasts import BROADCAST_COMMAND, BroadcastSender
from growthengine.flows.dispatch import MESSAGE_TIMER, Dispatcher
from growthengine.flows.engine import BROADCAST_TIMER, ENROLL_COMMAND, FlowEngine
from growthengine.flows.fanout import FANOUT_COMMAND, FanOut
from growthengine.flows.feedback import FEEDBACK_COMMAND
from growthengine.flows.model import Flow
from growthengine.flows.runner import RUN_TIMER, Runner
from growthengine.gate.decision import SendGate
from growthengine.gate.rules import GateRules
from growthengine.ingest.service import MERGE_COMMAND, IngestionService
from growthengine.optimize.content_generator import GeneratorConfig, OpenAICompatibleGenerator
from growthengine.optimize.copy_variants import CopyWriter
from growthengine.pipeline.ownership import Ownership, SoleOwner
from growthengine.pipeline.runner import BATCH_TIME_S, MANUAL_BATCH_TIME_S, Pipeline
from growthengine.pipeline.stages import Stage
from growthengine.scheduler.runner import Scheduler
from growthengine.segments.engine import SegmentEngine
from growthengine.segments.rebuild_commands import REBUILD_COMMAND, RebuildCommands
from growthengine.segments.segment_pass import TIMER_KIND as SEGMENT_TIMER
from growthengine.settings import Settings
from growthengine.storage.config_store import ConfigStore
from growthengine.storage.unit_of_work import Store
from growthengine.storage.wal_keeper import WalKeeper

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
                 config: EngineConfig | None = None, ownership: Ownership | None = None) -> Engine:
    """Wire an engine from settings; tests and the simulator may hand in their own clock, store or config.

    ``ownership`` says which partitions this process writes: all of them unless a ``growth worker`` on PostgreSQL
    hands in its leases.
    """
    clock = clock or build_clock(settings)
    store = store or Store.open(settings.db_url)
    if config is None:  # the merged config: defaults, the file (imported when it changed), the stored versions
        config, stamp = load_and_import_once(store, settings.config_file, to_us(clock.now()))
    else:
        with store.read() as tx:
            stamp = ConfigStore(tx.conn).stamp()
    known_segments = set(config.segments)
    ownership = ownership or SoleOwner()
    scheduler = Scheduler(store, clock, ownership, chunk=settings.timer_chunk)
    ingestion = IngestionService(store, clock, future_tolerance=dt.timedelta(seconds=settings.future_tolerance_s))
    flows = build_flow_engine(settings, config, clock, store, known_segments)
    audiences = AudienceSync(flows.dispatcher, clock)
    segments = SegmentEngine(config.segments, clock, settings.business_timezone,
                             transition_listeners=[flows, audiences],
                             entry_max_lag_us=entry_max_lag_us(settings))
    segments.use_ownership(ownership)  # the state it keeps in memory follows what this process holds
    analytics = kpi_listener(settings, segments, clock)
    erasure = UserErasure(engine_secret(settings.data_dir), audiences, clock)
    audit = ConsentAudit()

    # The pipeline: which stage consumes what, in this order, each batch of the log. A stage commits its effects
    # with its cursor; per-user commands (merges, fan-outs, feedback, erasures) reach the stages that apply them.
    tracker = EngagementTracker(settings.business_timezone)
    stages = [
        Stage("segments", segments, {MERGE_COMMAND: segments.on_merge_commands,  # -> flows, ads audiences
                                     ERASE_COMMAND: segments_handler(segments),
                                     REBUILD_COMMAND: RebuildCommands(segments).on_commands}),  # rebuilds, back-fills
        Stage("flows", flows, {ENROLL_COMMAND: flows.on_enroll_commands,  # triggers, exits, feedback, listings
                               FANOUT_COMMAND: FanOut(lambda: flows.flows, flows.command_enrollments,
                                                      lambda: to_us(clock.now())).on_commands,  # price drops
                               FEEDBACK_COMMAND: flows.on_feedback_commands, ERASE_COMMAND: erase_flows,
                               BROADCAST_COMMAND: BroadcastSender(flows.runner,
                                                                  lambda: to_us(clock.now())).on_commands}),
        Stage("consent", audit, {ERASE_COMMAND: audit.on_erase_commands}),  # the consent audit trail
        Stage("engagement", tracker, {FEEDBACK_COMMAND: tracker.on_feedback_commands,  # send time, channel scores
                                      ERASE_COMMAND: erase_models}),
        Stage("analytics", analytics, {MERGE_COMMAND: analytics.on_merge_commands,  # conversions, unsubscribes
                                       ERASE_COMMAND: erase_kpis}),
    ]
    manual = isinstance(clock, ManualClock)
    # On SQLite the worker's batches share the write lock with ingestion: a 2 ms breath between them.
    pause_s = 0.002 if store.dialect == "sqlite" and not manual else 0.0
    # After the stages, every batch: the KPI rollups over the message events written since the last one.
    pipeline = Pipeline(store, stages, ownership, pause_s=pause_s, tombstones={ERASE_COMMAND: retire_tombstones},
                        tails=[analytics], batch_time_s=MANUAL_BATCH_TIME_S if manual else BATCH_TIME_S)
    if WalKeeper.applies_to(store) and not manual:
        # SQLite's write-ahead log kept short between the worker's batches (ingestion's commits then run no
        # checkpoint of their own).
        pipeline.after_commit.append(WalKeeper(store).after_batch)
    # Durable timers, by kind.
    scheduler.register(SEGMENT_TIMER, segments.on_timers)
    scheduler.register(RUN_TIMER, flows.on_run_timers)
    scheduler.register(MESSAGE_TIMER, flows.on_message_timers)
    scheduler.register(BROADCAST_TIMER, flows.on_broadcast_timers)
    # Timers due ms apart: the segment stage's writes, then the runs its entries start, once per group of instants.
    scheduler.batches += [segments.timer_group, flows.enrolment]
    scheduler.register(SNAPSHOT_TIMER, analytics.on_snapshot_timers)
    # Deliveries to real providers, after the ledger has committed the messages.
    delivery = DeliveryWorker(store, {p.provider.name: p.provider for p in flows.dispatcher.providers.values()
                                      if isinstance(p, LedgerBridge)}, clock, ownership.worker_id)
    # Calls of flow runs to other services (coupons, recommendations, generated copy), outside transactions.
    runner = flows.runner
    activities = ActivityExecutor(store, clock, runner.coupons, runner.recommendations, runner.copywriter)
    engine = Engine(settings=settings, clock=clock, store=store, scheduler=scheduler, ingestion=ingestion,
                    config=config, segments=segments, flows=flows, delivery=delivery, pipeline=pipeline,
                    activities=activities, erasure=erasure, known_segments=known_segments, config_stamp=stamp,
                    config_applied=stamp)
    pipeline.config_current = engine.config_is_current
    pipeline.follow_config = lambda: engine.follow_config(apply=True)
    if isinstance(clock, ManualClock):
        # The manual clock's promise: a request (or a clock advance) finishes all the work it causes.
        scheduler.after_commit.append(pipeline.drain)
        scheduler.after_commit.append(activities.drain)
        scheduler.after_commit.append(delivery.drain)
    start_analytics(engine, analytics)
    engine.backfill_changed_segments()
    with store.transaction() as tx:
        flows.start(tx)
        business_time.remember(tx, clock)
    if isinstance(clock, ManualClock):
        engine.process_pending()  # what a crash left between the log and the stages
    log.info("engine wired: %s storage, %s clock, %d segments", store.dialect, clock.mode, len(config.segments))
    return engine


def build_command_engine(settings: Settings) -> Engine:
    """The engine of a command run against an existing database (``growth segments``, ``growth flows``, ``growth
    import``): on the engine's own business time, the stored manual time when a manual-clock engine wrote it last."""
    store = Store.open(settings.db_url)
    clock: Clock | None = None
    if settings.clock == "real":
        with store.read() as tx:
            clock = business_time.stored_manual_clock(tx)
    try:
        return build_engine(settings, clock=clock, store=store)
    except BaseException:
        store.close()
        raise


def build_flow_engine(settings: Settings, config: EngineConfig, clock: Clock, store: Store,
                      known_segments: set[str] | None = None) -> FlowEngine:
    """The flow engine with its send gate, channel providers, and the coupon and recommendation services."""
    templates = config.templates or load_default_templates()
    gate = SendGate(GateRules(global_control_pct=settings.global_control_pct), settings.business_timezone)
    optimizer = Optimizer(settings.business_timezone)
    tracker = EngagementTracker(settings.business_timezone)
    providers = build_providers(settings.channel_providers, settings.provider_settings, clock=clock,
                                public_url=settings.public_url)
    dispatcher = Dispatcher(gate, providers, optimizer=optimizer, on_sent=[tracker.on_sent])
    coupons: CouponSource = (
        RemoteCoupons(HttpCouponEngine(settings.coupon_engine_url, clock=clock)) if settings.coupon_engine_url
        else EmbeddedCoupons(EmbeddedCouponEngine(store, clock))
    )
    recommendations: RecommendationSource = (
        RemoteRecommendations(HttpRecommendationEngine(settings.recommendation_engine_url))
        if settings.recommendation_engine_url
        else EmbeddedRecommendations(PopularInFavouriteCategory(store, clock))
    )
    links = UnsubscribeLinks.from_data_dir(settings.data_dir, settings.public_url)
    runner = Runner(templates, dispatcher, coupons, recommendations, site_url=settings.site_url,
                    business_timezone=settings.business_timezone, links=links, optimizer=optimizer,
                    copywriter=build_copywriter(settings))
    segment_keys = known_segments if known_segments is not None else set(config.segments)

    def load_version(key: str, definition: dict[str, object]) -> Flow | None:
        # Every segment known since start, and the templates of now (a reload replaces the runner's).
        return load_flow_version(key, dict(definition), segment_keys, runner.templates)

    return FlowEngine(config.flows, runner, clock, load_version, entry_max_lag_us=entry_max_lag_us(settings))


def entry_max_lag_us(settings: Settings) -> int:
    """``flow_entry_max_lag`` in microseconds (how the engine keeps times)."""
    return settings.flow_entry_max_lag // dt.timedelta(microseconds=1)


def build_copywriter(settings: Settings) -> CopyWriter | None:
    """Generated copy variants, when an OpenAI-compatible endpoint is configured (else the curated copy only)."""
    if not settings.genai_base_url:
        return None
    config = GeneratorConfig(base_url=settings.genai_base_url, model=settings.genai_model,
                             api_key=settings.genai_api_key)
    return CopyWriter(OpenAICompatibleGenerator(config))
