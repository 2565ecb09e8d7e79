"""The log read once per set-based rebuild: its events with the properties the segments use as typed columns.

A rebuild's queries (``sql_compile``) would otherwise each scan ``events`` and parse every payload they read (one
JSON parse per row, per leaf). :func:`create_typed_events` makes one temporary table per rebuild instead: every
stored event (not the commands) with, for each property any segment reads (filters, ``of``, ``per``, a pattern's
entity and its plural), the property's JSON type and its value, extracted in one pass over the log. The compiled
queries then aggregate over plain columns.

The columns keep what the JSON functions return, so the compiled comparisons read them exactly as they read the
payload: on SQLite ``json_type`` and ``json_extract`` (a column without affinity keeps integers, reals and texts
apart; an array or object stays its JSON text), on PostgreSQL ``jsonb_typeof`` and ``->>`` (text).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from growthengine.segments.feeds import walk
from growthengine.segments.model import EventAggregate, Pattern, Segment
from growthengine.segments.sql_json import TYPED, JsonSql, NotCompilable, Params
from growthengine.segments.sql_plan import LEAVES

TABLE = "ge_typed_events"
PG_WORK_MEM = "1GB"
"""PostgreSQL's ``work_mem`` for a rebuild's transaction (per sort or hash node of its statements)."""
USER_ORDER = "ix_events_user_ts"
"""The log's index in (user, instant) order (``storage/schema.py``), which the SQLite copy walks."""
DOC = TYPED
_PLAIN = {"yield_per": 0, "stream_results": False}
"""Statements that return no rows: never through a server-side cursor (a connection a scan set ``yield_per`` on)."""
"""The document name the compiler passes to :class:`JsonSql` for a property of the typed table's row ``e``."""


@dataclass(frozen=True)
class TypedEvents:
    """The temporary table's properties: property name -> its column number (``c{n}_t``, ``c{n}_v``)."""

    columns: dict[str, int]
    table: str = TABLE


def properties_used(segments: Iterable[Segment]) -> dict[str, set[str]]:
    """Every event property a segment's conditions read (in a stable order), with the event names it is read of."""
    props: dict[str, set[str]] = {}
    for segment in segments:
        for node in walk(segment.condition):
            if isinstance(node, EventAggregate):
                for prop in (*(f.prop for f in node.where), node.of, node.per):
                    if prop is not None:
                        props.setdefault(prop, set()).add(node.event)
            elif isinstance(node, Pattern):
                for prop in (node.same, node.same + "s"):
                    props.setdefault(prop, set()).update((node.first, *node.not_followed_by))
    return props


def create_typed_events(conn: sa.Connection, dialect: str, segments: Iterable[Segment]) -> TypedEvents:
    """(Re)create the temporary table for ``segments`` in this connection's session: one scan of the log."""
    used = properties_used(segments)
    props = []
    for name in used:
        try:
            JsonSql.path(name)
        except NotCompilable:
            continue  # a name no compiled query can read: the segment falls back to Python anyway
        props.append(name)
    params = Params()
    json = JsonSql(dialect, params)
    pg = dialect == "postgresql"
    doc = "e.pj" if pg else "e.payload"
    selects = ["e.id AS id", "e.user_id AS user_id", "e.type AS type", "e.name AS name", "e.ts_us AS ts_us"]
    for n, name in enumerate(props):
        # Only the events a leaf reads the property of (every such leaf filters by the event's name): the others'
        # payloads are not parsed at all.
        of = f"e.name IN ({', '.join(params.add(event) for event in sorted(used[name]))})"
        value = json.prop(doc, name)
        text = value.text if pg else f"json_extract({doc}, {params.add(JsonSql.path(name))})"
        selects += [f"CASE WHEN {of} THEN {value.typ} END AS c{n}_t", f"CASE WHEN {of} THEN {text} END AS c{n}_v"]
    names = sorted({event for name in props for event in used[name]})
    # PostgreSQL parses a payload once (OFFSET 0 keeps the subquery apart), and only an event's a rule reads.
    marks = ", ".join(params.add(event) for event in names)
    parsed = f"CASE WHEN name IN ({marks}) THEN CAST(payload AS jsonb) END" if names else "CAST(NULL AS jsonb)"
    # SQLite reads the log in (user, instant) order through its index: no sort of the whole log (at 10,000,000
    # events the sort was most of the copy, and grew faster than the log).
    source = (f"(SELECT id, user_id, type, name, ts_us, {parsed} AS pj FROM events "  # noqa: S608 (markers only)
              "WHERE type <> 'command' OFFSET 0) e" if pg else f"events e INDEXED BY {USER_ORDER}")
    where = "" if pg else " WHERE e.type <> 'command'"
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}", execution_options=_PLAIN)
    if pg:
        # The planner's estimates for set-returning JSON functions are wild (millions of rows): with JIT on, it
        # compiles the rebuild's queries for a second or more, longer than they run. Off for this transaction.
        conn.exec_driver_sql("SET LOCAL jit = off", execution_options=_PLAIN)
        # The rebuild's hash aggregates and sorts (a row per user, per user and day) in memory, not spilled to disk
        # in 4 MB pieces (the default): for this transaction only.
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{PG_WORK_MEM}'", execution_options=_PLAIN)
        # Its joins by user are of a table of users (small) with every event: hashed. A merge join sorts every
        # event by its user's text first (2 of the 8 s of the leaves at 1,000,000 events).
        conn.exec_driver_sql("SET LOCAL enable_mergejoin = off", execution_options=_PLAIN)
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {TABLE} AS SELECT {', '.join(selects)} FROM {source}"),  # noqa: S608
                     params.values, execution_options=_PLAIN)
        conn.exec_driver_sql(f"ANALYZE {TABLE}", execution_options=_PLAIN)
    else:
        # Kept in (user, instant, id) order, the index's: every per-user GROUP BY reads it in order, without a sort
        # or a lookup per row, and it is written by appending.
        columns = ", ".join(["id INTEGER", "user_id TEXT", "type TEXT", "name TEXT", "ts_us INTEGER",
                             *(f"c{n}_t TEXT, c{n}_v" for n in range(len(props)))])
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {TABLE} ({columns}, PRIMARY KEY (user_id, ts_us, id)) "
                             "WITHOUT ROWID", execution_options=_PLAIN)
        conn.execute(sa.text(f"INSERT INTO {TABLE} SELECT {', '.join(selects)} FROM {source}{where} "  # noqa: S608
                             "ORDER BY e.user_id, e.ts_us, e.id"), params.values, execution_options=_PLAIN)
    return TypedEvents({name: n for n, name in enumerate(props)})


def drop_typed_events(conn: sa.Connection) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}", execution_options=_PLAIN)


def create_leaves(conn: sa.Connection, setup: str, params: dict[str, Any], tables: dict[str, str]) -> None:
    """The users' leaf aggregates (``sql_plan.CompiledRebuild.setup``) as a temporary table, made once, after the
    temporary tables it reads (``CompiledRebuild.tables``)."""
    pg = conn.dialect.name == "postgresql"
    for name, select in [*tables.items(), (LEAVES, setup)]:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}", execution_options=_PLAIN)
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {name} AS {select}"), params, execution_options=_PLAIN)
        if pg:
            conn.exec_driver_sql(f"ANALYZE {name}", execution_options=_PLAIN)


def drop_leaves(conn: sa.Connection, tables: Iterable[str] = ()) -> None:
    for name in (LEAVES, *tables):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}", execution_options=_PLAIN)
