"""Set-based rebuilds: each segment's membership for every user from one SQL query over the log (``sql_compile``),
diffed against the stored members and written back in bulk.

Entries and exits are recorded as transitions the way the Python rebuild records them (exits' reasons start with
``rebuild: ``), and the transition listeners (the flow engine) are NOT told: a rebuild starts no flow (CONTRACT 8).
The members' reasons and data come from the Python evaluator itself, run on a small state made from the aggregates
the query measured, so they read exactly as the incremental engine words them. The stored per-user segment state
keeps its feeds (the live engine's); only its memberships (``m``) follow the rebuild, so the live engine goes on from
the rebuilt answer. A segment that cannot be compiled is rebuilt by the Python evaluator (with the listeners
silenced as well), and the log says so.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.clock import to_us
from growthengine.scheduler.collector import collector_paused
from growthengine.segments.engine import SegmentEngine
from growthengine.segments.evaluate import Evaluator
from growthengine.segments.feeds import walk
from growthengine.segments.model import ActiveDays, EventAggregate, Pattern
from growthengine.segments.sql_compile import CompiledRebuild, CompiledSegment, compile_rebuild, timezone_sql
from growthengine.segments.sql_json import JsonSql, Params, register_sqlite_functions
from growthengine.segments.sql_phases import Phases
from growthengine.segments.sql_state import Opens, readers_of, synthetic_state
from growthengine.segments.sql_typed import (
    create_leaves,
    create_typed_events,
    drop_leaves,
    drop_typed_events,
    sqlite_session,
)
from growthengine.storage.segment_store import Membership, Transition
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

MAX_ZONES = 200
REBUILD_PREFIX = "rebuild: "
Facets = dict[str, dict[str, Any]]


@dataclass
class SqlRebuildResult:
    rows: int = 0
    """Users the queries returned (members now, or stored as members)."""
    entered: int = 0
    exited: int = 0
    compiled: list[str] = field(default_factory=list)
    fell_back: list[str] = field(default_factory=list)
    disagreements: int = 0
    """Users whose SQL membership the evaluator, given the SQL's aggregates, did not confirm (left as stored)."""
    phases: Phases = field(default_factory=Phases)
    """How long each part took (logged at the end)."""


@dataclass(frozen=True)
class UserVerdict:
    user_id: str
    member: bool
    facets: Facets
    reason: str


def prepare(tx: Tx) -> None:
    """The SQLite functions the compiled queries call (a no-op on PostgreSQL)."""
    if tx.dialect == "sqlite":
        register_sqlite_functions(tx.conn.connection.driver_connection)  # type: ignore[arg-type]


def user_zones(tx: Tx) -> list[str]:
    """The time zones named by the users' ``timezone`` traits."""
    params = Params()
    json = JsonSql(tx.dialect, params)
    sql = f"SELECT DISTINCT {timezone_sql(json, json.doc('traits'))} FROM profiles"  # noqa: S608 (markers only)
    return sorted(z for (z,) in tx.conn.execute(sa.text(sql), params.values) if z is not None)


def compile_all(engine: SegmentEngine, tx: Tx, keys: list[str], as_of_us: int, zones: list[str],
                fresh: set[str], phases: Phases | None = None) -> CompiledRebuild:
    """What the leaves read of the log (``sql_typed``), every user's leaves of ``keys`` (:data:`LEAVES`), and one
    query per segment over it."""
    typed = create_typed_events(tx.conn, tx.dialect, engine.segments.values(), as_of_us, phases)
    plan = compile_rebuild(engine.segments, keys, tx.dialect, as_of_us, typed,
                           business_tz=engine.business_timezone, zones=zones, fresh=fresh, max_zones=MAX_ZONES)
    create_leaves(tx.conn, plan.setup, plan.params, plan.tables, phases, plan.by_user)
    return plan


def drop_all(tx: Tx, plan: CompiledRebuild) -> None:
    drop_leaves(tx.conn, plan.tables)
    drop_typed_events(tx.conn)


def _open_entities(tx: Tx, compiled: CompiledSegment) -> Opens:
    out: Opens = {}
    for alias, sql in compiled.facet_sql.items():
        users: dict[str, dict[str, list[Any]]] = defaultdict(dict)
        for user_id, entity, ts, payload in tx.conn.execute(sa.text(sql), compiled.params):
            users[user_id][entity] = [int(ts), orjson.loads(payload)]
        out[alias] = dict(users)
    return out


def _plain(compiled: CompiledSegment) -> bool:
    """A member of this segment keeps no data and no entity (no pattern, no ``per``): SQL alone says all."""
    return not any(isinstance(leaf.node, Pattern) or (isinstance(leaf.node, EventAggregate) and leaf.node.per)
                   for leaf in compiled.leaves)


def verdicts(tx: Tx, compiled: CompiledSegment, as_of_us: int,
             settled: set[str] | None = None) -> Iterator[UserVerdict]:
    """Every user the query returns: the SQL's membership, with the evaluator's facets and reason.

    ``settled``: users stored as members of a plain segment (``_plain``); when SQL says they still are, nothing
    changes and the evaluator is not run (their verdict has the stored facet and no reason).
    """
    opens = _open_entities(tx, compiled)
    keys, rows = _query_rows(tx, compiled.sql, compiled.params)
    at_user, at_member = keys.index("user_id"), keys.index("member")
    readers = readers_of(compiled)
    for values in rows:
        if settled is not None and values[at_member] and values[at_user] in settled:
            yield UserVerdict(values[at_user], True, {"": {"data": {}, "reason": ""}}, "")
            continue
        row = dict(zip(keys, values, strict=True))
        traits = orjson.loads(row["traits"]) if row["traits"] else {}
        evaluator = Evaluator(traits, synthetic_state(compiled, row, opens, as_of_us, readers), as_of_us)
        facets = evaluator.segment(compiled.segment)
        yield UserVerdict(row["user_id"], bool(row["member"]), facets, evaluator.last_verdict.reason)


def _query_rows(tx: Tx, sql: str, params: dict[str, Any]) -> tuple[list[str], Iterator[Sequence[Any]]]:
    """A query's column names and its rows as tuples, a few thousand fetched at a time."""
    if tx.dialect == "sqlite":
        # The driver's own cursor (sqlite3 reads the ``:name`` markers itself): SQLAlchemy's result costs a few
        # microseconds a row more, per member of every segment.
        cursor = tx.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(sql, params)
        return [d[0] for d in cursor.description], _fetched(cursor)
    # yield_per on the statement: on the connection it would stay on for the writes (PostgreSQL's server-side
    # cursors cannot executemany)
    result = tx.conn.execute(sa.text(sql).execution_options(yield_per=5000), params)
    return list(result.keys()), iter(result)


def _fetched(cursor: Any) -> Iterator[Sequence[Any]]:
    try:
        while batch := cursor.fetchmany(5000):
            yield from batch
    finally:
        cursor.close()


def _stored(tx: Tx, key: str) -> dict[str, dict[str, tuple[int, dict[str, Any], str]]]:
    rows = tx.conn.execute(sa.text("SELECT user_id, entity, since_us, data, reason FROM segment_members "
                                   "WHERE segment_key = :k"), {"k": key})
    out: dict[str, dict[str, tuple[int, dict[str, Any], str]]] = defaultdict(dict)
    for user_id, entity, since, data, reason in rows:
        out[user_id][entity] = (since, orjson.loads(data), reason)
    return out


def _rebuild_one(tx: Tx, compiled: CompiledSegment, as_of_us: int, result: SqlRebuildResult,
                 memberships: dict[str, dict[str, dict[str, list[Any]] | None]]) -> None:
    key = compiled.segment.key
    stored = _stored(tx, key)
    transitions: list[Transition] = []
    members: list[Membership] = []
    removed: list[tuple[str, str, str]] = []
    settled = {u for u, entities in stored.items() if set(entities) == {""} and entities[""][1] == {}} \
        if _plain(compiled) else None
    with result.phases.timed("verdicts"):
        _verdicts(tx, compiled, as_of_us, result, memberships, stored, settled, transitions, members, removed)
    with result.phases.timed("writes"):
        # In the order of the tables' keys (user first): each index page is written once, not a page per row in the
        # query's (hashed) order; a stable sort keeps a user's exits before its entries.
        members.sort(key=lambda m: m.user_id)
        transitions.sort(key=lambda t: t.user_id)
        tx.segments.delete_members(removed)
        tx.segments.upsert_members(members)
        tx.segments.record_transitions(transitions)
    result.entered += sum(1 for t in transitions if t.kind == "enter")
    result.exited += sum(1 for t in transitions if t.kind == "exit")


def _verdicts(tx: Tx, compiled: CompiledSegment, as_of_us: int, result: SqlRebuildResult,
              memberships: dict[str, dict[str, dict[str, list[Any]] | None]],
              stored: dict[str, dict[str, tuple[int, dict[str, Any], str]]], settled: set[str] | None,
              transitions: list[Transition], members: list[Membership], removed: list[tuple[str, str, str]]) -> None:
    key = compiled.segment.key
    for v in verdicts(tx, compiled, as_of_us, settled):
        result.rows += 1
        if v.member != bool(v.facets):
            result.disagreements += 1
            log.warning("segment %s: SQL and the evaluator disagree for one user; left as stored", key)
            continue
        current = stored.get(v.user_id, {})
        changed = False
        for entity in current.keys() - v.facets.keys():
            transitions.append(Transition(key, v.user_id, entity, "exit", as_of_us, REBUILD_PREFIX + v.reason,
                                          current[entity][1], event_us=as_of_us, origin="rebuild"))
            removed.append((key, v.user_id, entity))
            changed = True
        for entity, facet in v.facets.items():
            if entity not in current:
                transitions.append(Transition(key, v.user_id, entity, "enter", as_of_us, facet["reason"],
                                              facet["data"], event_us=as_of_us, origin="rebuild"))
                members.append(Membership(key, v.user_id, entity, as_of_us, facet["data"], facet["reason"]))
                changed = True
            elif current[entity][1] != facet["data"]:
                members.append(Membership(key, v.user_id, entity, current[entity][0], facet["data"], facet["reason"]))
                changed = True
        if changed:
            since = {e: current[e][0] if e in current else as_of_us for e in v.facets}
            memberships[v.user_id][key] = {e: [since[e], f["data"]] for e, f in v.facets.items()} or None


def sql_memberships(engine: SegmentEngine, tx: Tx, as_of_us: int) -> tuple[dict[tuple[str, str], Facets], list[str]]:
    """Every segment's members at ``as_of_us`` by SQL: (segment, user) -> facets; and the segments not compiled.

    The counterpart of ``rebuild.batch_memberships`` (every ``in segment`` answered afresh). A user whose SQL
    membership the evaluator does not confirm raises ``AssertionError`` (a compiler defect).
    """
    prepare(tx)
    zones = user_zones(tx)
    out: dict[tuple[str, str], Facets] = {}
    plan = compile_all(engine, tx, list(engine.order), as_of_us, zones, set(engine.segments))
    skipped = [key for key in engine.order if key in plan.skipped]
    for key, compiled in plan.segments.items():
        for v in verdicts(tx, compiled, as_of_us):
            if v.member != bool(v.facets):
                raise AssertionError(f"segment {key}, user {v.user_id}: SQL says member={v.member}, "
                                     f"the evaluator on its aggregates says {sorted(v.facets)} ({v.reason})")
            if v.member:
                out[(key, v.user_id)] = v.facets
    drop_all(tx, plan)
    return out, skipped


def _save_memberships(tx: Tx, memberships: dict[str, dict[str, dict[str, list[Any]] | None]], as_of_us: int) -> None:
    """The stored states' ``m`` follows the rebuilt memberships (the live engine diffs against it)."""
    users = list(memberships)
    for start in range(0, len(users), 2000):
        chunk = users[start : start + 2000]
        states = tx.segments.load_states(chunk)
        for user_id in chunk:
            m = states.setdefault(user_id, {}).setdefault("m", {})
            for key, facets in memberships[user_id].items():
                if facets is None:
                    m.pop(key, None)
                else:
                    m[key] = facets
        tx.segments.save_states(states, as_of_us)


def sql_rebuild(engine: SegmentEngine, tx: Tx, keys: list[str] | None = None, *,
                phases: Phases | None = None) -> SqlRebuildResult:
    """Rebuild ``keys`` (default: every segment) at the engine's time, set-based; see the module's docstring.
    ``phases``: where its phases are timed (a benchmark's, with the server's CPU read)."""
    result = SqlRebuildResult(phases=phases or Phases())
    # The collector held off (the project's way for a bounded group of work, ``scheduler/collector.py``): the
    # verdicts, memberships and transitions of every member stay alive until written, and its passes walked them
    # again and again (3,000,000 events: verdicts 2.7-3.1 -> 1.7 CPU s).
    with sqlite_session(tx.conn), collector_paused():
        _sql_rebuild(engine, tx, keys, result)
    log.info("rebuilt %s in SQL (%d users looked at): %d entered, %d left%s", ", ".join(result.compiled) or "nothing",
             result.rows, result.entered, result.exited,
             f"; by the Python evaluator: {', '.join(result.fell_back)}" if result.fell_back else "")
    log.info("SQL rebuild's phases: %s", result.phases.describe())
    return result


def _sql_rebuild(engine: SegmentEngine, tx: Tx, keys: list[str] | None, result: SqlRebuildResult) -> None:
    as_of_us = to_us(engine.clock.now())
    chosen = set(keys) if keys else set(engine.segments)
    prepare(tx)
    needs_zones = any(isinstance(n, ActiveDays) for k in chosen for n in walk(engine.segments[k].condition))
    with result.phases.timed("users' zones"):
        zones = user_zones(tx) if needs_zones else []
    memberships: dict[str, dict[str, dict[str, list[Any]] | None]] = defaultdict(dict)
    plan = compile_all(engine, tx, [k for k in engine.order if k in chosen], as_of_us, zones, chosen, result.phases)
    for key in engine.order:
        if key in plan.skipped:
            result.fell_back.append(key)
            log.info("segment %s cannot be rebuilt in SQL (%s): rebuilt by the Python evaluator", key,
                     plan.skipped[key])
        elif key in plan.segments:
            _rebuild_one(tx, plan.segments[key], as_of_us, result, memberships)
            result.compiled.append(key)
    with result.phases.timed("drop"):
        drop_all(tx, plan)
    with result.phases.timed("members' state"):
        _save_memberships(tx, memberships, as_of_us)
    engine.forget_cached(list(memberships))  # their stored state was written here, not by the stage
    if result.fell_back:
        with result.phases.timed("Python fallback"):
            _python_rebuild(engine, tx, result)


def _python_rebuild(engine: SegmentEngine, tx: Tx, result: SqlRebuildResult) -> None:
    from growthengine.segments.rebuild import rebuild

    listeners, engine.listeners = engine.listeners, []  # a rebuild starts no flow
    try:
        fallback = rebuild(engine, tx, result.fell_back)
    finally:
        engine.listeners = listeners
    result.entered += fallback.entered
    result.exited += fallback.exited
