"""The engine as its entrypoints see it: one object that the API, the CLI and the simulator call."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from growthengine import business_time
from growthengine.channels.delivery import DeliveryWorker
from growthengine.clock import Clock, ManualClock, from_us, to_us
from growthengine.config.errors import ConfigError
from growthengine.config.loader import EngineConfig
from growthengine.config.versions import Change, load_and_import_once, load_merged, record
from growthengine.domain.messages import Message
from growthengine.engagement.experiments import ExperimentBook, configured_experiments
from growthengine.erasure.request import ErasureReceipt, Source, UserErasure
from growthengine.flows import feedback
from growthengine.flows.activities import ActivityExecutor
from growthengine.flows.engine import FlowEngine
from growthengine.flows.feedback import FEEDBACK_COMMAND, Feedback
from growthengine.flows.read_time import render_at_read
from growthengine.ingest.service import IngestionService, IngestResult
from growthengine.pipeline.ownership import Ownership
from growthengine.pipeline.runner import Pipeline
from growthengine.scheduler.runner import Scheduler
from growthengine.segments.engine import SegmentEngine
from growthengine.segments.rebuild import Progress, RebuildResult, rebuild
from growthengine.segments.rebuild_commands import RebuildJob, submit_rebuild
from growthengine.settings import Settings
from growthengine.storage.config_store import ConfigKind, ConfigStore, ConfigVersion
from growthengine.storage.unit_of_work import Store, Tx
from growthengine.timefmt import format_instant

log = logging.getLogger(__name__)


class ConfigConflict(RuntimeError):
    """Two changes to one item at the same moment: the later one is refused (409)."""


class ClockNotManual(RuntimeError):
    """The engine runs on the real clock, which cannot be advanced."""


@dataclass
class Engine:
    settings: Settings
    clock: Clock
    store: Store
    scheduler: Scheduler
    ingestion: IngestionService
    config: EngineConfig
    segments: SegmentEngine
    flows: FlowEngine
    delivery: DeliveryWorker
    pipeline: Pipeline
    activities: ActivityExecutor
    erasure: UserErasure
    webhooks_rejected: dict[str, int] = field(default_factory=dict)
    work_arrived: threading.Event = field(default_factory=threading.Event)
    """Set when something was stored that the workers should look at (they also poll)."""
    known_segments: set[str] = field(default_factory=set)
    """Every segment key configured since start (older flow versions may refer to them)."""
    config_stamp: int = 0
    """The stored config's stamp that ``config`` reflects (``config_versions``' newest id)."""
    config_applied: int = 0
    """The stamp whose segments were back-filled and flows started by this process."""
    config_checked_s: float = float("-inf")

    @property
    def manual(self) -> bool:
        return isinstance(self.clock, ManualClock)

    def ingest(
        self, calls: list[Any], *, default_type: str | None = None, batch_sent_at: Any = None
    ) -> IngestResult:
        result = self.ingestion.ingest(calls, default_type=default_type, batch_sent_at=batch_sent_at)
        self.after_ingest()
        return result

    def after_ingest(self) -> None:
        """Stored calls are in the log. Under the manual clock the work they cause is done now, before the answer;
        on the real clock the workers are woken and the answer goes at once."""
        if self.manual:
            self.process_pending()
        else:
            self.work_arrived.set()

    def process_pending(self) -> int:
        """Run every stage until it has caught up with the log, make the calls that runs wait for (and let those
        runs go on), then hand queued messages to real providers (the manual clock's synchronous drain)."""
        read = self.pipeline.drain()
        while self.activities.drain():
            # The answered runs' timers are due now: fire them (their work drains the stages again).
            self.scheduler.advance(self.clock.now())
            read += self.pipeline.drain()
        if self.delivery.drain():
            read += self.pipeline.drain()  # the deliveries' status changes reach the KPI rollups
        return read

    def advance(self, to: dt.datetime) -> int:
        """Move the manual clock to ``to``, doing all the work that falls due on the way."""
        if not isinstance(self.clock, ManualClock):
            raise ClockNotManual("the engine runs on the real clock; start it with --clock manual")
        self.process_pending()
        processed = self.scheduler.advance(to)
        self.process_pending()
        with self.store.transaction() as tx:
            business_time.remember(tx, self.clock)  # commands run later on this database use this time
        return processed

    def pipeline_status(self) -> dict[str, Any]:
        """Lag per stage (events and seconds behind), the live workers and the partitions each holds."""
        from growthengine.clock import system_seconds
        from growthengine.pipeline.ownership import LEASE_TTL_S

        stages = [{"stage": lag.stage, "behind": lag.events, "lagSeconds": round(lag.seconds, 3)}
                  for lag in self.pipeline.lag()]
        now_s = system_seconds()
        with self.store.read() as tx:
            workers = tx.leases.live_workers(now_s - LEASE_TTL_S)
            held: dict[str, int] = {}
            for _partition, owner, _epoch, expires in tx.leases.leases():
                if owner is not None and expires >= now_s:
                    held[owner] = held.get(owner, 0) + 1
            pending_calls = tx.activities.pending_count()
        return {"stages": stages, "workers": [{"id": w, "partitions": held.get(w, 0)} for w in workers],
                "pendingActivities": pending_calls}

    def use_ownership(self, ownership: Ownership) -> None:
        """Write only the partitions ``ownership`` holds (a worker on PostgreSQL)."""
        self.pipeline.ownership = ownership
        self.scheduler.ownership = ownership
        self.segments.use_ownership(ownership)  # its in-memory state follows the leases
        self.delivery.claimer = ownership.worker_id  # its heartbeat keeps its deliveries' claims

    def run_due(self) -> int:
        """Do the work that is due now (the background worker calls this on the real clock)."""
        return self.scheduler.run_due()

    def user_view(self, user_id: str) -> dict[str, Any] | None:
        """``GET /v1/users/{userId}``: traits, computed values and segment memberships."""
        with self.store.read() as tx:
            profile = tx.profiles.get(user_id)
            if profile is None or profile.anonymous:
                return None
            memberships = [m for m in tx.segments.members_of_user(user_id) if m.segment in self.segments.segments]
            computed: dict[str, Any] = {
                "first_seen": format_instant(from_us(profile.first_seen_us)),
                "last_active": format_instant(from_us(profile.last_active_us))
                if profile.last_active_us is not None else None,
                "segment_data": {m.segment: m.data for m in memberships if m.entity == ""},
                "segment_reasons": {m.segment: m.reason for m in memberships if m.entity == ""},
            }
            entities: dict[str, list[str]] = {}
            for m in memberships:
                if m.entity:
                    entities.setdefault(m.segment, []).append(m.entity)
            if entities:
                computed["segment_entities"] = entities
            segments = sorted({m.segment for m in memberships})
            return {"userId": profile.user_id, "traits": profile.traits, "computed": computed, "segments": segments}

    def erase_user(self, user_id: str, source: Source) -> ErasureReceipt | None:
        """``DELETE /v1/users/{userId}`` (PDPA): the profile, identities and events go now, the stages clear the
        rest from the tombstone (under the manual clock before this returns); ``None`` for an unknown user."""
        with self.store.transaction() as tx:
            receipt = self.erasure.erase(tx, user_id, source)
        if receipt is not None:
            self.after_ingest()
        return receipt

    def can_unsubscribe(self, user_id: str, message_id: str) -> bool:
        """Whether a one-click unsubscribe link still names someone: not when the user was erased since (no
        profile, or the link's message lost its user), so that an old link recreates nothing of them."""
        with self.store.read() as tx:
            if tx.profiles.get(user_id) is None:
                return False
            message = tx.messages.get(message_id)
            return message is None or message.user_id == user_id

    def segment_sizes(self) -> dict[str, int]:
        """Members per segment (every configured segment, zero when empty)."""
        with self.store.read() as tx:
            sizes = tx.segments.sizes()
        return {key: sizes.get(key, 0) for key in self.segments.segments}

    def segment_members(self, key: str, *, after: str | None, limit: int) -> list[str]:
        with self.store.read() as tx:
            return tx.segments.members_page(key, after=after, limit=limit)

    def rebuild_segments(self, keys: list[str] | None = None, progress: Progress | None = None) -> RebuildResult:
        """Recompute memberships from the whole event history (all segments, or ``keys``)."""
        try:
            with self.store.transaction() as tx:
                return rebuild(self.segments, tx, keys, progress)
        finally:
            self.segments.forget_cached(None)  # every user's state was written again

    def submit_segment_rebuild(self, keys: list[str] | None = None) -> RebuildJob:
        """A rebuild of ``keys`` (all segments when ``None``) as per-user commands in the log, applied by the
        segment stage of the workers that own the users (``rebuild_progress`` follows it)."""
        with self.store.transaction() as tx:
            return submit_rebuild(tx, keys, to_us(self.clock.now()))

    def backfill_changed_segments(self) -> list[str]:
        """Back-fill segments added or edited since the last start; forget removed ones. Returns what changed."""
        versions = {key: seg.version for key, seg in self.segments.segments.items()}
        with self.store.transaction() as tx:
            known: dict[str, str] = tx.state.get("segment_versions") or {}
            changed = [k for k, v in versions.items() if known.get(k) != v]
            for removed in set(known) - set(versions):
                tx.segments.clear_segment(removed)
            if changed and tx.events.count() > 0:
                # Per-user commands that the segment stage applies in its own batches (no long transaction).
                submit_rebuild(tx, changed, to_us(self.clock.now()))
            tx.state.put("segment_versions", versions)
        if changed:
            log.info("segments back-filled from history: %s", ", ".join(changed))
        return changed

    def messages(self, *, user_id: str | None = None, flow: str | None = None, channel: str | None = None,
                 status: str | None = None, after_seq: int | None = None, limit: int = 100) -> list[Message]:
        with self.store.read() as tx:
            return tx.messages.query(user_id=user_id, flow=flow, channel=channel, status=status,
                                     after_seq=after_seq, limit=limit)

    def message_counts(self) -> dict[str, int]:
        with self.store.read() as tx:
            return tx.messages.counts()

    def inbox(self, user_id: str) -> list[Message] | None:
        """The in-app messages due for the user (the app calls this on open); they count as delivered."""
        now_us = to_us(self.clock.now())
        with self.store.read() as tx:
            profile = tx.profiles.get(user_id)
            if profile is None:
                return None
            due = [m for m in tx.messages.query(user_id=user_id, channel="in_app", limit=10_000)
                   if m.status in ("sent", "delivered") and (m.expires_us is None or m.expires_us > now_us)]
            render_at_read(self.flows.runner, tx, due, profile.traits, now_us)  # "2 hours left" as of now
        self._feedback([m for m in due if m.status == "sent"], "delivered", now_us)
        return due

    def mark_read(self, user_id: str, message_id: str) -> Message | None:
        """The user read an in-app message: it is opened."""
        now_us = to_us(self.clock.now())
        with self.store.read() as tx:
            message = tx.messages.get(message_id)
            if message is None or message.user_id != user_id or message.channel != "in_app":
                return None
            profile = tx.profiles.get(user_id)
            render_at_read(self.flows.runner, tx, [message], profile.traits if profile else {}, now_us)
        if message.status in ("sent", "delivered"):
            self._feedback([message], "opened", now_us)
        return message

    def _feedback(self, messages: list[Message], status: str, now_us: int) -> None:
        """Feedback on the user's own messages goes through the log (the flows stage applies it, the engagement
        stage learns from it); the answer shows the status the message moves to."""
        if not messages:
            return
        with self.store.transaction() as tx:
            tx.log.append_commands([(m.user_id, FEEDBACK_COMMAND, now_us, Feedback(m.id, status, now_us).payload())
                                    for m in messages], now_us)
        for message in messages:
            message.status = status
        self.after_ingest()

    def experiments(self, flow: str | None = None) -> list[dict[str, Any]]:
        """``GET /v1/experiments``: every experiment (optionally one flow's)."""
        configured = configured_experiments(self.config.flows)
        with self.store.read() as tx:
            items = ExperimentBook().overview(tx, configured)
        return [item for item in items if flow is None or item["flow"] == flow]

    def flow_counts(self, key: str) -> dict[tuple[str, str], int]:
        with self.store.read() as tx:
            return tx.runs.step_counts(key)

    def send_time(self, user_id: str, channel: str, after: dt.datetime | None = None,
                  within: dt.timedelta = dt.timedelta(hours=24)) -> dict[str, Any] | None:
        """``GET /v1/users/{id}/send-time``: when to send to this user on this channel, and why."""
        optimizer = self.flows.runner.optimizer
        assert optimizer is not None
        start = max(after or self.clock.now(), self.clock.now())
        with self.store.transaction() as tx:
            profile = tx.profiles.get(user_id)
            if profile is None or profile.anonymous:
                return None
            choice = optimizer.send_time(tx, user_id, profile.traits, channel, start, within)
        return {"sendAt": format_instant(choice.send_at), "source": choice.source, "reason": choice.reason,
                "detail": choice.detail}

    def channel_scores(self, user_id: str) -> dict[str, float] | None:
        optimizer = self.flows.runner.optimizer
        assert optimizer is not None
        with self.store.transaction() as tx:
            profile = tx.profiles.get(user_id)
            if profile is None or profile.anonymous:
                return None
            return optimizer.channel_scores(tx, user_id, to_us(self.clock.now()))

    def handle_webhook(self, provider: str, headers: dict[str, str], body: bytes) -> int:
        """A provider's webhook: verify it, refuse replays, and put each event in the log as feedback on its message
        (the flows stage applies it); returns how many events move their message forward (raises if refused)."""
        events = feedback.parse(self.flows.dispatcher.providers, provider, headers, body)
        with self.store.transaction() as tx:
            accepted = feedback.accept_events(tx, events)
            tx.log.append_commands(accepted.commands, to_us(self.clock.now()))
        if accepted.unsubscribes:
            self.ingest(accepted.unsubscribes)
        else:
            self.after_ingest()
        return accepted.applied

    def reload_config(self, *, apply: bool = True) -> ConfigError | None:
        """Load the merged config again (the config file, imported when it changed, and the stored versions). A
        config with errors is refused and the engine keeps its last good one. ``apply`` also back-fills changed
        segments and records the flows' versions (a worker's part; the API process only follows)."""
        try:
            config, stamp = load_and_import_once(self.store, self.settings.config_file, to_us(self.clock.now()))
        except ConfigError as exc:
            log.error("config refused, keeping the last good one:\n%s", exc)
            return exc
        self.use_config(config, stamp, apply=apply)
        log.info("config reloaded: %d segments, %d flows", len(config.segments), len(config.flows))
        return None

    def use_config(self, config: EngineConfig, stamp: int, *, apply: bool = True) -> None:
        self.config = config
        self.config_stamp = stamp
        self.known_segments.update(config.segments)
        self.segments.configure(config.segments)
        self.flows.configure(config.flows)
        if config.templates is not None:
            self.flows.runner.templates = config.templates
        if apply:
            self.config_applied = stamp
            self.backfill_changed_segments()
            with self.store.transaction() as tx:
                self.flows.start(tx)
            if self.manual:
                self.process_pending()  # a newly published flow's enrolments, under the manual clock's promise

    def change_config(self, kind: ConfigKind, key: str, body: Any | None, changed_by: str) -> ConfigVersion:
        """Store a new version of one segment, flow or template (``body`` ``None``: delete it), validated with
        the whole merged config as the config file is; raises :class:`ConfigError` listing every problem."""
        change: Change = (kind, key, body)
        try:
            with self.store.transaction() as tx:
                config = load_merged(tx.conn, self.settings.config_file, changes=[change])
                record(tx.conn, [change], changed_by=changed_by, now_us=to_us(self.clock.now()))
                configs = ConfigStore(tx.conn)
                stamp, version = configs.stamp(), configs.latest(kind, key)
        except sa.exc.IntegrityError:
            raise ConfigConflict(f"{kind} {key!r} was changed by another request at the same moment; "
                                 "read it again and retry") from None
        assert version is not None
        self.use_config(config, stamp, apply=self.manual)
        return version

    def config_history(self, *, kind: ConfigKind | None = None, key: str | None = None,
                       before_id: int | None = None, limit: int = 100) -> list[ConfigVersion]:
        with self.store.read() as tx:
            return ConfigStore(tx.conn).history(kind=kind, key=key, before_id=before_id, limit=limit)

    def follow_config(self, *, apply: bool = True) -> bool:
        """Reload when the stored config changed (another process, or this one, stored a version)."""
        with self.store.read() as tx:
            stamp = ConfigStore(tx.conn).stamp()
        if stamp == (self.config_applied if apply else self.config_stamp):
            return False
        if stamp == self.config_stamp:
            self.use_config(self.config, stamp, apply=apply)
            return True
        return self.reload_config(apply=apply) is None

    def config_is_current(self, tx: Tx) -> bool:
        """Whether the config this engine applies is the newest stored (read in the caller's transaction)."""
        return ConfigStore(tx.conn).stamp() == self.config_applied

    def follow_config_soon(self, *, apply: bool) -> None:
        """``follow_config`` at most once a second of system time (at once under the manual clock)."""
        from growthengine.clock import system_seconds

        now_s = system_seconds()
        if self.manual or now_s - self.config_checked_s >= 1.0:
            self.config_checked_s = now_s
            self.follow_config(apply=apply)

    def close(self) -> None:
        self.store.close()
