"""The batch evaluator: segment state and memberships from the stored event history.

Used by ``growth segments rebuild``, to back-fill a segment that was added or edited, and by tests that check
the incremental engine against it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from growthengine.clock import system_seconds, to_us
from growthengine.domain.events import Event
from growthengine.domain.partitions import ALL_PARTITIONS
from growthengine.segments.engine import SegmentEngine
from growthengine.segments.evaluate import Evaluator
from growthengine.segments.feeds import State, apply_event, prune
from growthengine.segments.segment_pass import PassBatch
from growthengine.storage.segment_store import Origin
from growthengine.storage.stage_log import COMMAND, Position
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
SEGMENT_STAGE = "segments"
CHUNK_USERS = 2000


@dataclass
class RebuildResult:
    users: int = 0
    events: int = 0
    entered: int = 0
    exited: int = 0


def _users_in_log(tx: Tx, progress: Progress | None, applied_only: bool = False
                  ) -> Iterator[tuple[str, list[Event]]]:
    current: str | None = None
    events: list[Event] = []
    for chunk in tx.events.scan(applied_by=SEGMENT_STAGE if applied_only else None):
        for event in chunk:
            if event.user_id != current:
                if current is not None:
                    yield current, events
                current, events = event.user_id, []
            events.append(event)
        if progress is not None:
            progress(len(chunk))
    if current is not None:
        yield current, events


def fold_history(engine: SegmentEngine, tx: Tx, now_us: int, progress: Progress | None = None,
                 applied_only: bool = False) -> Iterator[list[tuple[str, State, dict[str, object]]]]:
    """Every user's state folded afresh from the log, in chunks of (user, state, traits); ``applied_only``: from
    the events the segment stage has applied."""
    pending: list[tuple[str, list[Event]]] = []

    def finish() -> list[tuple[str, State, dict[str, object]]]:
        profiles = tx.profiles.get_many([u for u, _ in pending])
        out = []
        for user_id, events in pending:
            profile = profiles.get(user_id)
            traits = profile.traits if profile else {}
            tz = engine._tz(traits)
            state: State = {}
            for event in events:
                apply_event(state, event, engine.plan, tz)
            prune(state, engine.plan, engine.segments.values(), now_us)
            out.append((user_id, state, traits))
        return out

    for user_id, events in _users_in_log(tx, progress, applied_only):
        pending.append((user_id, events))
        if len(pending) >= CHUNK_USERS:
            yield finish()
            pending = []
    if pending:
        yield finish()


def batch_memberships(engine: SegmentEngine, tx: Tx, now_us: int) -> dict[tuple[str, str], set[str]]:
    """What every segment's membership should be at ``now_us`` by the rules alone: (segment, user) -> entities.

    Evaluated in dependency order on the fresh states (segments that refer to others see the fresh answer).
    """
    result: dict[tuple[str, str], set[str]] = {}
    for chunk in fold_history(engine, tx, now_us):
        for user_id, state, traits in chunk:
            memberships = state.setdefault("m", {})
            for key in engine.order:
                facets = Evaluator(traits, state, now_us).segment(engine.segments[key])
                if facets:
                    memberships[key] = {e: [now_us, f["data"]] for e, f in facets.items()}
                    result[(key, user_id)] = set(facets)
    return result


def rebuild(engine: SegmentEngine, tx: Tx, keys: list[str] | None = None,
            progress: Progress | None = None, origin: Origin = "rebuild", *, applied_only: bool = False
            ) -> RebuildResult:
    """Recompute every user's state from history and apply ``keys`` (default: all segments) at once.

    The entries it finds are recorded with their reason but start no flow (their origin says so).
    ``applied_only`` (a back-fill of an added or edited segment): only the events the segment stage has already
    applied are folded, and the stage goes on with the rest as live events (an event stored after a segment and its
    flow were published enters users live, starting the flow). Otherwise the whole log is folded, and on SQLite
    (writers take turns) the stage's cursor moves to the tail."""
    now_us = to_us(engine.clock.now())
    chosen = set(keys) if keys else set(engine.segments)
    result = RebuildResult()
    for chunk in fold_history(engine, tx, now_us, progress, applied_only):
        old_states = tx.segments.load_states([u for u, _, _ in chunk])
        batch = PassBatch()
        states: dict[str, State] = {}
        for user_id, state, traits in chunk:
            _reconcile_folded(engine, batch, user_id, state, old_states.get(user_id, {}), traits, now_us, chosen,
                              origin)
            states[user_id] = state
        result.users += len(chunk)
        _write_chunk(engine, tx, batch, states, now_us, result)
    result.events = tx.events.count()
    if not applied_only and tx.log.horizon() is None:
        # Writers take turns (SQLite): this transaction saw the whole log, so the segment stage must not apply
        # what the rebuild folded in a second time.
        tx.log.advance([SEGMENT_STAGE], ALL_PARTITIONS, tx.log.tail(), system_seconds(),
                       tx.log.cursors([SEGMENT_STAGE]))
    log.info("rebuilt %s for %d users: %d entered, %d left", ", ".join(sorted(chosen)), result.users,
             result.entered, result.exited)
    return result


def _events_before(tx: Tx, positions: dict[str, Position]) -> dict[str, list[Event]]:
    """Each user's stored events (not commands) before its position in the log, in (time, id) order."""
    users = list(positions)
    pg = tx.dialect == "postgresql"
    tx_col = "txid" if pg else "0"
    where = "user_id = ANY(%s)" if pg else f"user_id IN ({','.join('?' * len(users))})"
    sql = (f"SELECT {tx_col}, id, user_id, type, name, ts_us, payload, message_id, origin FROM events "  # noqa: S608
           f"WHERE type <> '{COMMAND}' AND {where} ORDER BY user_id, ts_us, id")
    out: dict[str, list[Event]] = {u: [] for u in users}
    loads = orjson.loads
    rows = tx.conn.exec_driver_sql(sql, ((users,) if pg else tuple(users)),
                                   execution_options={"yield_per": 0, "stream_results": False})
    for tx_pos, row_id, user_id, type_, name, ts_us, payload, message_id, origin in rows:
        if (int(tx_pos), int(row_id)) < positions[user_id]:
            out[user_id].append(Event(user_id=user_id, name=name, ts_us=ts_us, type=type_,
                                      properties=loads(payload), message_id=message_id, id=row_id, origin=origin))
    return out


def rebuild_users(engine: SegmentEngine, tx: Tx, positions: dict[str, Position], keys: list[str] | None = None,
                  origin: Origin = "rebuild") -> RebuildResult:
    """Rebuild these users' state and ``keys`` (default: all segments) from their events before ``positions``
    (each user's rebuild command in the log: what the segment stage has applied when it reaches the command; it
    goes on with the later events live), at the engine's business time. Used by the rebuild command's handler."""
    now_us = to_us(engine.clock.now())
    chosen = {k for k in keys if k in engine.segments} if keys else set(engine.segments)
    result = RebuildResult()
    users = list(positions)
    for start in range(0, len(users), CHUNK_USERS):
        chunk = {u: positions[u] for u in users[start : start + CHUNK_USERS]}
        history = _events_before(tx, chunk)
        profiles = tx.profiles.get_many(list(chunk))
        old_states = tx.segments.load_states(list(chunk))
        batch = PassBatch()
        states: dict[str, State] = {}
        for user_id, events in history.items():
            if not events and user_id not in old_states:
                continue  # nothing stored and nothing to fold (erased since the rebuild was submitted)
            profile = profiles.get(user_id)
            traits: dict[str, Any] = profile.traits if profile else {}
            tz = engine._tz(traits)
            state: State = {}
            for event in events:
                apply_event(state, event, engine.plan, tz)
            prune(state, engine.plan, engine.segments.values(), now_us)
            _reconcile_folded(engine, batch, user_id, state, old_states.get(user_id, {}), traits, now_us, chosen,
                              origin)
            states[user_id] = state
            result.events += len(events)
        result.users += len(states)
        _write_chunk(engine, tx, batch, states, now_us, result)
    return result


def _reconcile_folded(engine: SegmentEngine, batch: PassBatch, user_id: str, state: State, old: State,
                      traits: dict[str, Any], now_us: int, chosen: set[str], origin: Origin) -> None:
    """Decide memberships on a freshly folded ``state``, against what was stored (``old``: memberships, timers)."""
    state["m"] = old.get("m", {})
    state["t"] = old.get("t", {})
    state["ti"] = old.get("ti", {})
    engine._reconcile(batch, user_id, state, traits, now_us, chosen, fired=set(), force=True, origin=origin)


def _write_chunk(engine: SegmentEngine, tx: Tx, batch: PassBatch, states: dict[str, State], now_us: int,
                 result: RebuildResult) -> None:
    """Write one chunk's states and effects (replacing what any process held of those users in memory)."""
    result.entered += sum(1 for t in batch.transitions if t.kind == "enter")
    result.exited += sum(1 for t in batch.transitions if t.kind == "exit")
    engine._flush(tx, batch, states, now_us)
