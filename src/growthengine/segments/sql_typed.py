"""What a set-based rebuild reads of the log, made once per rebuild as temporary tables.

* **The typed events** (:func:`create_typed_events`): the stored events a leaf reads by name (an ``event:`` aggregate
  or a pattern; not the commands), and only those its windows can reach (a windowed aggregate's events after its
  window opens, a pattern's after ``leaves_after`` before the rebuild instant, a lifetime aggregate's all), with, for
  each property a segment reads (filters, ``of``, ``per``, a pattern's entity and its plural), the property's JSON
  type and its value, extracted in the one pass that copies them. The compiled queries then aggregate over plain
  columns. The columns keep what the JSON functions return, so the compiled comparisons read them exactly as they
  read the payload: on SQLite ``json_type`` and ``json_extract`` (a column without affinity keeps integers, reals
  and texts apart; an array or object stays its JSON text), on PostgreSQL ``jsonb_typeof`` and ``->>`` (text).
* **The log's users** (:data:`LOG_USERS`): every user with a stored event that is not a command, with the last
  activity. The activity leaves (``inactive``, ``active_days``) read every event of a user, but only its instant
  and whether it is activity: on SQLite they are read from the log's ``(user_id, ts_us)`` index (which holds the
  instant and the row id: no lookup of the row, no copy, no sort), the few events that are not activity set apart
  first by id (:data:`NON_ACTIVITY`, one scan of the log in its own order); on PostgreSQL by one hashed
  aggregation of the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from growthengine.segments.feeds import walk
from growthengine.segments.model import EventAggregate, Pattern, Segment
from growthengine.segments.sql_json import TYPED, JsonSql, NotCompilable, Params
from growthengine.segments.sql_phases import Phases
from growthengine.segments.sql_plan import LEAVES, LOG_USERS, NON_ACTIVITY

TABLE = "ge_typed_events"
PG_WORK_MEM = "1GB"
"""PostgreSQL's ``work_mem`` for a rebuild's transaction (per sort or hash node of its statements)."""
USER_ORDER = "ix_events_user_ts"
"""The log's index in (user, instant) order (``storage/schema.py``), which the SQLite copy walks."""
DOC = TYPED
ACTIVITY = "('track', 'page', 'screen')"
"""The event types that are activity (``inactive``, ``active_days``; the evaluator's)."""
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


def events_read(segments: Iterable[Segment], as_of_us: int) -> dict[str, int | None]:
    """Every event name a leaf reads, with the earliest instant any of them can reach (exclusive; None: all).

    A windowed aggregate counts its events after ``as_of - within``; a pattern's entity can be open only when its
    opening event came after ``as_of - leaves_after``, and an earlier closing event closes nothing opened later.
    """
    after: dict[str, int | None] = {}

    def read(name: str, bound: int | None) -> None:
        if name in after:
            known = after[name]
            after[name] = None if known is None or bound is None else min(known, bound)
        else:
            after[name] = bound

    for segment in segments:
        for node in walk(segment.condition):
            if isinstance(node, EventAggregate):
                read(node.event, None if node.within_us is None else as_of_us - node.within_us)
            elif isinstance(node, Pattern):
                for name in (node.first, *node.not_followed_by):
                    read(name, as_of_us - node.leaves_after_us)
    return after


def create_typed_events(conn: sa.Connection, dialect: str, segments: Iterable[Segment], as_of_us: int,
                        phases: Phases | None = None) -> TypedEvents:
    """(Re)create the temporary tables for ``segments`` in this connection's session (see the module's docstring):
    the typed events and the log's users."""
    phases = phases or Phases()
    segments = list(segments)
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
    if pg:
        _pg_session(conn)
    doc = "e.pj" if pg else "e.payload"
    selects = ["e.id AS id", "e.user_id AS user_id", "e.name AS name", "e.ts_us AS ts_us"]
    for n, name in enumerate(props):
        # Only the events a leaf reads the property of (every such leaf filters by the event's name): the others'
        # payloads are not parsed at all.
        of = f"e.name IN ({', '.join(params.add(event) for event in sorted(used[name]))})"
        value = json.prop(doc, name)
        text = value.text if pg else f"json_extract({doc}, {params.add(JsonSql.path(name))})"
        selects += [f"CASE WHEN {of} THEN {value.typ} END AS c{n}_t", f"CASE WHEN {of} THEN {text} END AS c{n}_v"]
    names = sorted({event for name in props for event in used[name]})
    # Only the events a leaf can reach: the names it reads, after the earliest instant its windows reach.
    reach = events_read(segments, as_of_us)
    lifetime = sorted(name for name, bound in reach.items() if bound is None)
    wanted = [f"name IN ({', '.join(params.add(name) for name in lifetime)})"] if lifetime else []
    wanted += [f"(name = {params.add(name)} AND ts_us > {params.add(bound)})"
               for name, bound in sorted(reach.items()) if bound is not None]
    reached = f"type <> 'command' AND ({' OR '.join(wanted) or '1 = 0'})"
    with phases.timed("typed events"):
        _copy(conn, pg, selects, reached, names, params, len(props))
    with phases.timed("log's users"):
        _create_log_users(conn, pg)
    return TypedEvents({name: n for n, name in enumerate(props)})


def _copy(conn: sa.Connection, pg: bool, selects: list[str], reached: str, names: list[str], params: Params,
          props: int) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}", execution_options=_PLAIN)
    if pg:
        # PostgreSQL parses a payload once (OFFSET 0 keeps the subquery apart), and only an event's a rule reads.
        marks = ", ".join(params.add(event) for event in names)
        parsed = f"CASE WHEN name IN ({marks}) THEN CAST(payload AS jsonb) END" if names else "CAST(NULL AS jsonb)"
        source = (f"(SELECT id, user_id, name, ts_us, {parsed} AS pj FROM events "  # noqa: S608 (markers only)
                  f"WHERE {reached} OFFSET 0) e")
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {TABLE} AS SELECT {', '.join(selects)} FROM {source}"),  # noqa: S608
                     params.values, execution_options=_PLAIN)
        conn.exec_driver_sql(f"ANALYZE {TABLE}", execution_options=_PLAIN)
    else:
        # The log read in its own order, not through the user index (a lookup per row: most of the copy when every
        # event was copied); not kept in user order either (sorting it as it is written cost more than the one
        # pass's sort of the events it groups).
        columns = ", ".join(["id INTEGER", "user_id TEXT", "name TEXT", "ts_us INTEGER",
                             *(f"c{n}_t TEXT, c{n}_v" for n in range(props))])
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {TABLE} ({columns})", execution_options=_PLAIN)
        conn.execute(sa.text(f"INSERT INTO {TABLE} SELECT {', '.join(selects)} FROM events e NOT INDEXED "  # noqa: S608
                             f"WHERE {reached}"), params.values, execution_options=_PLAIN)


SQLITE_CACHE_KIB = 1_048_576
"""SQLite's page cache for the rebuild's connection while it runs (its sorts of the events it groups stay in
memory rather than spilling; the connection's own is 256 MB), in KiB."""
SQLITE_MMAP_BYTES = 8 << 30
"""SQLite's memory map for the rebuild's connection while it runs (the whole log's index read in place; the
connection's own is 1 GB)."""


@contextmanager
def sqlite_session(conn: sa.Connection) -> Iterator[None]:
    """The rebuild's SQLite settings on its own connection while it runs, and the connection's own after."""
    if conn.dialect.name != "sqlite":
        yield
        return
    driver = conn.connection.driver_connection
    assert driver is not None
    # Each statement run to its end (fetchall) or closed: a statement left open keeps the connection from
    # registering the rebuild's SQL functions.
    (cache,) = driver.execute("PRAGMA cache_size").fetchall()[0]
    (mmap,) = driver.execute("PRAGMA mmap_size").fetchall()[0]
    driver.execute(f"PRAGMA cache_size = -{int(SQLITE_CACHE_KIB)}").close()
    driver.execute(f"PRAGMA mmap_size = {int(SQLITE_MMAP_BYTES)}").fetchall()
    try:
        yield
    finally:
        driver.execute(f"PRAGMA cache_size = {int(cache)}").close()
        driver.execute(f"PRAGMA mmap_size = {int(mmap)}").fetchall()


def _pg_session(conn: sa.Connection) -> None:
    # The planner's estimates for set-returning JSON functions are wild (millions of rows): with JIT on, it
    # compiles the rebuild's queries for a second or more, longer than they run. Off for this transaction.
    conn.exec_driver_sql("SET LOCAL jit = off", execution_options=_PLAIN)
    # The rebuild's hash aggregates and sorts (a row per user, per user and day) in memory, not spilled to disk
    # in 4 MB pieces (the default): for this transaction only.
    conn.exec_driver_sql(f"SET LOCAL work_mem = '{PG_WORK_MEM}'", execution_options=_PLAIN)
    # Its joins by user are of a table of users (small) with every event: hashed. A merge join sorts every
    # event by its user's text first (2 of the 8 s of the leaves at 1,000,000 events).
    conn.exec_driver_sql("SET LOCAL enable_mergejoin = off", execution_options=_PLAIN)


def _create_log_users(conn: sa.Connection, pg: bool) -> None:
    """:data:`LOG_USERS`: every user with a stored event that is not a command, and the last activity."""
    for name in (LOG_USERS, NON_ACTIVITY):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}", execution_options=_PLAIN)
    if pg:
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {LOG_USERS} AS SELECT user_id, MAX(ts_us) FILTER (WHERE type IN {ACTIVITY}) "  # noqa: S608
            "AS act_last, 0 AS has_other FROM events GROUP BY user_id "
            "HAVING COUNT(*) FILTER (WHERE type <> 'command') > 0", execution_options=_PLAIN)
        conn.exec_driver_sql(f"ANALYZE {LOG_USERS}", execution_options=_PLAIN)
        return
    # The events that are not activity, by id (a scan of the log in its own order; a few in a hundred).
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {NON_ACTIVITY} (id INTEGER PRIMARY KEY, user_id TEXT, "
                         "ts_us INTEGER, type TEXT)", execution_options=_PLAIN)
    conn.exec_driver_sql(f"INSERT INTO {NON_ACTIVITY} SELECT id, user_id, ts_us, type FROM events NOT INDEXED "  # noqa: S608
                         f"WHERE type NOT IN {ACTIVITY}", execution_options=_PLAIN)
    # Every user's last event and count from the index alone; a user whose last event is not activity (or ties
    # with one that is not) has the last activity looked up again, walking the index back from the end.
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {LOG_USERS} (user_id TEXT PRIMARY KEY, act_last INTEGER, "
                         "has_other INTEGER) WITHOUT ROWID", execution_options=_PLAIN)
    conn.exec_driver_sql(
        f"INSERT INTO {LOG_USERS} SELECT a.user_id, CASE WHEN o.user_id IS NULL OR o.last < a.last THEN a.last "  # noqa: S608
        f"ELSE (SELECT x.ts_us FROM events x INDEXED BY {USER_ORDER} WHERE x.user_id = a.user_id AND x.id NOT IN "
        f"(SELECT id FROM {NON_ACTIVITY}) ORDER BY x.ts_us DESC LIMIT 1) END, o.user_id IS NOT NULL "
        f"FROM (SELECT user_id, MAX(ts_us) AS last, COUNT(*) AS n FROM events INDEXED BY {USER_ORDER} "
        "GROUP BY user_id) a "
        "LEFT JOIN (SELECT user_id, MAX(ts_us) AS last, SUM(CASE WHEN type = 'command' THEN 1 ELSE 0 END) AS commands "
        f"FROM {NON_ACTIVITY} GROUP BY user_id) o ON o.user_id = a.user_id "
        "WHERE a.n > COALESCE(o.commands, 0) ORDER BY a.user_id", execution_options=_PLAIN)


def drop_typed_events(conn: sa.Connection) -> None:
    for name in (TABLE, LOG_USERS, NON_ACTIVITY):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}", execution_options=_PLAIN)


def create_leaves(conn: sa.Connection, setup: str, params: dict[str, Any], tables: dict[str, str],
                  phases: Phases | None = None, by_user: dict[str, tuple[str, ...]] | None = None) -> None:
    """The users' leaf aggregates (``sql_plan.CompiledRebuild.setup``) as a temporary table, made once, after the
    temporary tables it reads (``CompiledRebuild.tables``; on SQLite those of ``by_user`` keyed by user)."""
    pg = conn.dialect.name == "postgresql"
    phases = phases or Phases()
    by_user = by_user or {}
    for name, select in [*tables.items(), (LEAVES, setup)]:
        with phases.timed(name.removeprefix("ge_").removeprefix("leaf_").replace("_", " ")):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}", execution_options=_PLAIN)
            if not pg and name in by_user:
                # Columns without a type (no affinity): each keeps the value the query gave, as CREATE ... AS does.
                columns = by_user[name]
                conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({', '.join(columns)}, PRIMARY KEY "
                                     f"({columns[0]})) WITHOUT ROWID", execution_options=_PLAIN)
                conn.execute(sa.text(f"INSERT INTO {name} ({', '.join(columns)}) {select}"), params,
                             execution_options=_PLAIN)
                continue
            conn.execute(sa.text(f"CREATE TEMPORARY TABLE {name} AS {select}"), params, execution_options=_PLAIN)
            if pg:
                conn.exec_driver_sql(f"ANALYZE {name}", execution_options=_PLAIN)


def drop_leaves(conn: sa.Connection, tables: Iterable[str] = ()) -> None:
    for name in (LEAVES, *tables):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}", execution_options=_PLAIN)
