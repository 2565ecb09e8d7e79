"""The pipeline runner: reads the log once per batch for every stage, in log order, and commits each stage's
effects together with its cursor, so a crash at any point neither loses nor repeats an effect.

A batch takes whatever is stored (up to ``batch_size`` rows), never waiting for a batch to fill, and ends at a
tombstone (``tombstones``: an erased user's ``erase`` command), so that every stage applies it after exactly the
events before it and none after; a tombstone every stage has applied is retired (it keeps only a token). The batch
is read in a snapshot, then each stage runs in a transaction of its own that moves its cursor: a stage that fails
keeps its cursor (it retries that batch next time, and after ``MAX_FAILURES`` tries skips it, loudly) while the
others go on, and on SQLite ingestion's commits can take the write lock between two stages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from growthengine.clock import system_seconds
from growthengine.domain.profiles import Profile
from growthengine.pipeline.ownership import LeaseLost, Ownership
from growthengine.pipeline.stages import CommandHandler, Stage, Tail
from growthengine.storage.stage_log import COMMAND, START, LogRow, Position
from growthengine.storage.unit_of_work import Store, Tx

log = logging.getLogger(__name__)

BATCH_SIZE = 2_000
MIN_BATCH = 100
BATCH_TIME_S = 0.2
"""A batch aims to hold its transaction about this long (on SQLite the write lock is shared with ingestion)."""
MANUAL_BATCH_TIME_S = 1.0
"""Under the manual clock one process does everything and a request waits for all of it: no other writer waits for
the lock, so batches are sized for 1 s (fewer commits and rounds of the tails; a 200,000-user price drop took 17 %
less CPU than at 0.2 s, benchmarks/README.md "Flows")."""
MAX_FAILURES = 3
BREATHE_BETWEEN_STAGES_FROM = 1_000
"""A batch of at least this many rows (the worker is behind: ingestion is running ahead of it) breathes after
each stage's transaction, so that ingestion's waiting commits go in between; a smaller one (the worker keeps up)
breathes only at its end, so that each event's effects are seen soonest. Measured on SQLite at 5,000 events/s:
breaths after every stage let the worker fall seconds behind (fresh p99 0.8-4.7 s), none at all kept ingestion
waiting behind whole batches in a burst (acknowledged 6,200 against 9,300-10,500 events/s)."""


class _ConfigMoved(Exception):
    """A batch found the stored config newer than the one this process applies."""


@dataclass
class StageLag:
    stage: str
    events: int
    seconds: float


@dataclass
class Pipeline:
    store: Store
    stages: Sequence[Stage]
    ownership: Ownership
    batch_size: int = BATCH_SIZE
    now_s: Callable[[], float] = system_seconds
    after_commit: list[Callable[[], object]] = field(default_factory=list)
    tails: Sequence[Tail] = ()
    batch_time_s: float = BATCH_TIME_S
    """The time a batch is sized for at the recent cost of a row."""
    pause_s: float = 0.0
    """A breath after each batch that read something, and after each stage's transaction in a batch of
    :data:`BREATHE_BETWEEN_STAGES_FROM` rows or more: on SQLite, where the write lock is shared with ingestion, it
    lets a waiting ingestion commit go in between (``storage.database.begin_immediate`` polls for the lock every
    half millisecond)."""
    tombstones: Mapping[str, CommandHandler] = field(default_factory=dict)
    """Commands that end a batch, each with what becomes of it once every stage has applied it (an erasure's
    tombstone keeps only its token)."""
    config_current: Callable[[Tx], bool] | None = None
    """Whether this process applies the config as stored. Asked after a batch's rows are read, in the batch's
    transaction: an event stored after a config change (a segment or flow put over the API) is then never applied
    under the config from before it (a flow published with its segment would otherwise miss its first entrants)."""
    follow_config: Callable[[], object] | None = None
    """Loads the stored config when :attr:`config_current` says it moved."""
    _failures: dict[tuple[str, Position], int] = field(default_factory=dict)
    _row_cost_s: float = 0.0  # seconds a row costs, smoothed over batches

    def drain(self, *, max_batches: int | None = None) -> int:
        """Run batches until the stages have caught up with the log; returns how many rows were read."""
        total = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            read = self.step()
            if read == 0:
                break
            total += read
            batches += 1
        return total

    def step(self) -> int:
        """One batch for every stage; 0 when there was nothing new."""
        try:
            return self._step()
        except _ConfigMoved:
            assert self.follow_config is not None
            self.follow_config()
            log.info("pipeline: the stored config changed; the batch runs under it")
        return self._step(config_checked=True)

    def _step(self, *, config_checked: bool = False) -> int:
        partitions = self.ownership.partitions()
        if not partitions or not self.stages:
            return 0
        names = [s.name for s in self.stages]
        began = time.perf_counter()
        every = self.ownership.every_partition
        # The batch is read in a snapshot (on SQLite without the write lock, which ingestion needs meanwhile).
        with self.store.read() as tx:
            cursors = tx.log.cursors(names)
            start = min((cursors[n].get(p, START) for n in names for p in partitions), default=START)
            rows = tx.log.read(start, partitions, self._next_size(), every_partition=every)
            if rows:
                if not config_checked and self.config_current is not None and not self.config_current(tx):
                    raise _ConfigMoved  # nothing written yet: the batch is read again under the new config
                rows = self._through_first_tombstone(rows)
                users = list({r.event.user_id for r in rows if r.event.type != COMMAND})
                profiles = tx.profiles.get_many(users)
        if not rows:
            # No new log rows: only the tails (the KPI rollups over message changes) may have work.
            with self.store.transaction() as tx:
                self.ownership.check(tx)
                return self._tails(tx, partitions, every)
        end = rows[-1].position
        done = []
        for stage in self.stages:
            mine = _after(rows, cursors[stage.name])
            if self._run(stage, mine, profiles, partitions, end, cursors):
                done.append(stage.name)
            if self.pause_s and len(rows) >= BREATHE_BETWEEN_STAGES_FROM:
                time.sleep(self.pause_s)  # a waiting ingestion commit goes in between (SQLite)
        if not done:
            return 0  # every stage failed on this batch: they try again on the next pass, not in a loop
        with self.store.transaction() as tx:
            self.ownership.check(tx)
            self._retire_applied_tombstones(tx, rows, cursors, set(done))
            self._tails(tx, partitions, every)
        cost = (time.perf_counter() - began) / len(rows)
        self._row_cost_s = cost if not self._row_cost_s else 0.7 * self._row_cost_s + 0.3 * cost
        for hook in self.after_commit:
            hook()
        if self.pause_s:
            time.sleep(self.pause_s)
        return len(rows)

    def _is_tombstone(self, row: LogRow) -> bool:
        return row.event.type == COMMAND and row.event.name in self.tombstones

    def _through_first_tombstone(self, rows: list[LogRow]) -> list[LogRow]:
        if self.tombstones:
            for i, row in enumerate(rows):
                if self._is_tombstone(row):
                    return rows[:i + 1]
        return rows

    def _retire_applied_tombstones(self, tx: Tx, rows: list[LogRow], cursors: dict[str, dict[int, Position]],
                                   done: set[str]) -> None:
        """The batch's tombstones that every stage has now applied (a failed stage still needs its own) retire."""
        applied = [r.event for r in rows if self._is_tombstone(r) and all(
            s.name in done or cursors[s.name].get(r.partition, START) >= r.position for s in self.stages)]
        for name in {e.name for e in applied}:
            self.tombstones[name](tx, [e for e in applied if e.name == name])

    def _tails(self, tx: Tx, partitions: Sequence[int], every: bool) -> int:
        """Each tail's batch, in a savepoint (a tail that fails keeps its cursor and tries again next time)."""
        read = 0
        for tail in self.tails:
            savepoint = tx.conn.begin_nested()
            try:
                read += tail.run(tx, partitions, every)
                savepoint.commit()
            except Exception:
                savepoint.rollback()
                log.exception("pipeline tail %s failed; it will try again", tail.name)
        return read

    def _next_size(self) -> int:
        """As many rows as fit in about ``batch_time_s`` at the recent cost a row (between the bounds)."""
        if not self._row_cost_s:
            return self.batch_size
        return max(min(MIN_BATCH, self.batch_size), min(self.batch_size, int(self.batch_time_s / self._row_cost_s)))

    def _run(self, stage: Stage, rows: list[LogRow], profiles: dict[str, Profile], partitions: Sequence[int],
             end: Position, cursors: dict[str, dict[int, Position]]) -> bool:
        """The stage's part of the batch in a transaction of its own, which also moves its cursor to ``end`` (on
        SQLite ingestion commits between two stages, not only between two batches). A stage that fails has its
        transaction undone and keeps its cursor: it retries that batch next time, and after ``MAX_FAILURES`` tries
        its rows are skipped, loudly."""
        try:
            with self.store.transaction() as tx:
                self.ownership.check(tx)
                if rows:
                    stage.consume(tx, [r.event for r in rows], profiles)
                tx.log.advance([stage.name], partitions, end, self.now_s(), cursors)
            return True
        except LeaseLost:
            raise
        except Exception:
            key = (stage.name, end)
            tries = self._failures.get(key, 0) + 1
            self._failures[key] = tries
            if tries < MAX_FAILURES:
                log.exception("stage %s failed on rows up to %s (try %d); it will try again", stage.name, end, tries)
                return False
            log.exception("stage %s failed %d times on rows up to %s; skipping them", stage.name, tries, end)
            self._failures.pop(key, None)
        with self.store.transaction() as tx:
            self.ownership.check(tx)
            tx.log.advance([stage.name], partitions, end, self.now_s(), cursors)
        return True

    def lag(self) -> list[StageLag]:
        """Per stage: rows not yet applied (for the partitions of this database) and seconds since it last moved
        while behind."""
        names = [s.name for s in self.stages]
        with self.store.read() as tx:
            moved = tx.log.cursor_times()
            now_s = self.now_s()
            out = []
            backlogs = tx.log.backlogs(names)
            for name in names:
                behind = backlogs[name]
                seconds = max(0.0, now_s - moved.get(name, now_s)) if behind else 0.0
                out.append(StageLag(name, behind, seconds))
        return out


def _after(rows: list[LogRow], cursors: dict[int, Position]) -> list[LogRow]:
    """The rows (in log order) past the stage's cursor of their partition."""
    if not cursors or not rows or rows[0].position > max(cursors.values()):
        return rows  # the usual case: the stage is where the batch starts, in every partition
    return [r for r in rows if r.position > cursors.get(r.partition, START)]
