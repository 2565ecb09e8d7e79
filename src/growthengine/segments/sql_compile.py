"""The segments of a rebuild compiled to SQL over the log's typed events: one pass per user, then one query each.

A rebuild first makes what it reads of the log (``sql_typed``): the typed events (the events a leaf can reach, with
the properties the segments read as columns, one scan and one parse of the payloads) and the log's users (every
user with a stored event, with the last activity). :func:`compile_rebuild` then writes

* ``setup``: one row per user in the log (the log's users) with every leaf's aggregates, of every segment being
  rebuilt, each leaf's a temporary table with one row per user (``tables``, made first; on SQLite keyed by user),
  joined by user. The plain aggregates (``count``/``sum``/``distinct``/``last`` of the events of one name,
  filtered, windowed or lifetime) are conditional aggregates of ONE ``GROUP BY user`` pass over the typed events of
  the names they read (``SUM(...) FILTER (WHERE <its events>)``: the other rows do not reach the aggregate). The
  leaves that need more than one row per user are their own: ``per`` (the best group by ``ROW_NUMBER()``:
  qualifying first, then the largest value, then the largest group, as the evaluator picks it), ``active_days``
  (distinct local days of activity after ``last - within``, in the user's ``timezone`` trait or the business time
  zone, read from the log itself: on SQLite its (user, instant) index) and patterns (per entity, ``listing_id`` or
  each of ``listing_ids``, the opening events due by ``as_of`` and not yet left with no closing event at or after
  them; at the same instant, after them in the log when the evaluator orders same-instant events by arrival;
  window functions over each entity's events, no anti-join). A pattern's open entities are a table of their own,
  which the setup counts per user and the members' facets read again. An identical leaf in two segments is
  computed once.
* per segment, a query over that table: each user who is a member at ``as_of`` or is stored as one (so a rebuild
  sees its exits), with the leaves' aggregates and ``member``, decided in SQL; :mod:`growthengine.segments.
  sql_rebuild` hands the aggregates to the Python evaluator to word the reason, so reasons read the same whichever
  way a segment is rebuilt. ``TraitCondition`` reads ``profiles.traits``; ``InSegment`` inlines the other segment's
  condition (a fresh answer, as the batch evaluator gives it) or, for a segment not being rebuilt, reads its stored
  members.

A condition that cannot be written with the evaluator's exact semantics raises :class:`NotCompilable` (comparisons
with lists or mappings as operands, ``in`` a text, ``exists`` with a non-boolean, a pattern whose first event also
closes it, more than 200 distinct time zones under ``active_days``); the rebuild then uses the Python evaluator.

Known differences, in corners the tracking plan does not produce (the property test stays out of them): a group,
distinct value or entity that is a JSON array or object is keyed by its JSON text, not Python's ``repr``; on
PostgreSQL a float is keyed by its JSON text (``1e16`` where Python says ``1e+16``) and a text summed by ``sum``
counts as a number only in plain decimal or exponent notation (Python's ``float()`` also reads ``1_000``, ``inf``
and ``nan``); a float sum may differ in its last bits (the order of addition); local days before 1970 on SQLite.
"""

from __future__ import annotations

from typing import Any

from growthengine.segments import feeds
from growthengine.segments.feeds import compare
from growthengine.segments.model import (
    ActiveDays,
    All,
    AnyOf,
    Condition,
    EventAggregate,
    Inactive,
    InSegment,
    Not,
    Pattern,
    Segment,
    TraitCondition,
)
from growthengine.segments.sql_days import DaysUses, inactive_guard, pg_active_days, sqlite_active_days
from growthengine.segments.sql_json import DAY_US, TYPED, JsonSql, NotCompilable, Params, local_day_sql
from growthengine.segments.sql_plan import (
    LEAF,
    LEAVES,
    LOG_USERS,
    OPENS,
    USER_AGGREGATES,
    CompiledRebuild,
    CompiledSegment,
    Leaf,
)
from growthengine.segments.sql_typed import TypedEvents

__all__ = ["LEAVES", "CompiledRebuild", "CompiledSegment", "Leaf", "NotCompilable", "compile_rebuild",
           "timezone_sql"]

SAME_INSTANT_BY_ARRIVAL = hasattr(feeds, "closing_order")
"""Whether the evaluator orders a pattern's events at one instant by their log id (event-time patterns) or lets a
closing event close every opening event of its instant (before event time landed)."""


def timezone_sql(json: JsonSql, traits_doc: str) -> str:
    """The ``timezone`` trait when it is a non-empty string (the evaluator's ``_tz``), else NULL."""
    value = json.prop(traits_doc, "timezone")
    return f"(CASE WHEN {value.typ} = {json.STR} AND {value.text} <> '' THEN {value.text} END)"


class _Compiler:
    def __init__(self, dialect: str, segments: dict[str, Segment], as_of_us: int, business_tz: str,
                 zones: list[str], fresh: set[str], typed: TypedEvents) -> None:
        self.params = Params()
        self.typed = typed
        self.json = JsonSql(dialect, self.params, typed.columns)
        self.segments = segments
        self.as_of_us = as_of_us
        self.now = self.params.add(as_of_us)
        self.business_tz = business_tz
        self.zones = zones
        self.fresh = fresh
        # Shared by every segment: the one pass, its scored columns, the leaves joined to it, identical leaves once.
        self.passed: dict[str, str] = {}  # column -> aggregate over the typed events e (GROUP BY user)
        self.pass_names: set[str] = set()  # the event names the pass aggregates
        self.scored: dict[str, str] = {}  # column -> expression over the pass's row g
        self.ctes: dict[str, str] = {}
        self.tables: dict[str, str] = {}  # temporary tables made before the setup
        self.joined: dict[str, tuple[str, ...]] = {}  # leaf table -> its columns (one row per user), joined by user
        self.by_user: dict[str, tuple[str, ...]] = {}  # tables with one row per user -> their columns
        self.memo: dict[Any, tuple[str, tuple[str, ...], str]] = {}  # leaf -> (alias, columns, predicate)
        self.count = 0
        self.days_uses: dict[str, DaysUses] = {}  # active-days leaf -> where it is read
        self.segment_key = ""
        # Per segment.
        self.selects: list[str] = []
        self.leaves: list[Leaf] = []
        self.facet_sql: dict[str, str] = {}
        self.top = True
        self.inlining: list[str] = []

    def alias(self) -> str:
        self.count += 1
        return f"l{self.count}"

    def condition(self, node: Condition) -> str:
        if isinstance(node, All):
            # An active-days leaf beside an ``inactive`` one is read only where that one holds (``sql_days``).
            guard = inactive_guard(node.items, self.now, self.params)
            parts = [self._memoized(c, guard) if isinstance(c, ActiveDays) else self.condition(c) for c in node.items]
            return "(" + " AND ".join(parts) + ")" if parts else "(1 = 1)"
        if isinstance(node, AnyOf):
            return "(" + " OR ".join(self.condition(c) for c in node.items) + ")" if node.items else "(1 = 0)"
        if isinstance(node, Not):
            return f"(NOT {self.condition(node.item)})"
        if isinstance(node, TraitCondition):
            doc = self.json.doc("p.traits")
            return self.json.compare(self.json.prop(doc, node.trait), node.compare, doc, node.trait)
        if isinstance(node, InSegment):
            return self.in_segment(node)
        if isinstance(node, Inactive):
            self._activity()
            if self.top:
                self.leaves.append(Leaf(node, "act"))
            return f"(j.act_last IS NOT NULL AND {self.now} - j.act_last > {self.params.add(node.more_than_us)})"
        return self._memoized(node)

    def _memoized(self, node: EventAggregate | ActiveDays | Pattern, guard: str | None = None) -> str:
        try:
            known = self.memo.get(node)
        except TypeError:  # an operand that cannot be hashed (a list): compiled again
            known = None
        if known is None:
            if isinstance(node, ActiveDays):
                known = self.active_days(node)
            elif isinstance(node, Pattern):
                known = self.pattern(node)
            else:
                known = self.aggregate(node)
            try:
                self.memo[node] = known
            except TypeError:
                pass
        a, columns, predicate = known
        if isinstance(node, ActiveDays):
            self._activity()  # the evaluator reads the last activity with the days
            self.days_uses.setdefault(a, DaysUses()).add(guard, self.segment_key)
        if self.top:
            self.leaves.append(Leaf(node, a))
            self.selects.extend(f"j.{a}_{c} AS {a}_{c}" for c in columns)
            if isinstance(node, Pattern):
                self.facet_sql[a] = self._facets(a)
        return predicate

    # Leaves ---------------------------------------------------------------------------------------------

    def _where(self, node: EventAggregate) -> list[str]:
        j, add = self.json, self.params.add
        where = [f"e.name = {add(node.event)}"]
        if node.within_us is not None:
            where += [f"e.ts_us > {add(self.as_of_us - node.within_us)}", f"e.ts_us <= {self.now}"]
        where += [j.compare(j.prop(TYPED, f.prop), f.compare, TYPED, f.prop) for f in node.where]
        return where

    def aggregate(self, node: EventAggregate) -> tuple[str, tuple[str, ...], str]:
        if node.per is not None:
            return self.per_aggregate(node)
        j = self.json
        a = self.alias()
        cond = " AND ".join(self._where(node))
        self.pass_names.add(node.event)
        self.passed[f"{a}_n"] = f"SUM(1) FILTER (WHERE {cond})"
        self.passed[f"{a}_l"] = f"MAX(e.ts_us) FILTER (WHERE {cond})"
        names = ["n", "l"]
        if node.measure in ("sum", "distinct"):
            if node.of is None:
                raise NotCompilable(f"{node.measure} without a property")
            value = j.prop(TYPED, node.of)
            if node.measure == "sum":
                self.passed[f"{a}_s"] = f"SUM({j.summand(value)}) FILTER (WHERE {cond})"
                self.passed[f"{a}_fl"] = f"MAX({j.float_flag(value)}) FILTER (WHERE {cond})"
                names += ["s", "fl"]
            else:
                self.passed[f"{a}_d"] = f"COUNT(DISTINCT {j.key(value)}) FILTER (WHERE {cond})"
                names.append("d")
        measured = {"count": f"g.{a}_n", "sum": f"g.{a}_s", "distinct": f"g.{a}_d",
                    "last": f"({self.now} - g.{a}_l)"}[node.measure]
        ok = j.compare_number(measured, node.compare)
        self.scored[f"{a}_ok"] = f"CASE WHEN g.{a}_n IS NULL THEN NULL WHEN {ok} THEN 1 ELSE 0 END"
        default = 1 if compare(None if node.measure == "last" else 0, node.compare) else 0
        return a, (*names, "ok"), f"(COALESCE(j.{a}_ok, {default}) = 1)"

    def per_aggregate(self, node: EventAggregate) -> tuple[str, tuple[str, ...], str]:
        j = self.json
        a = self.alias()
        where = self._where(node)
        columns = ["COUNT(*) AS n", "MAX(e.ts_us) AS l"]
        names = ["grp", "n", "l"]
        if node.measure in ("sum", "distinct"):
            if node.of is None:
                raise NotCompilable(f"{node.measure} without a property")
            value = j.prop(TYPED, node.of)
            if node.measure == "sum":
                columns += [f"SUM({j.summand(value)}) AS s", f"MAX({j.float_flag(value)}) AS fl"]
                names += ["s", "fl"]
            else:
                columns.append(f"COUNT(DISTINCT {j.key(value)}) AS d")
                names.append("d")
        group = j.key(j.prop(TYPED, node.per or ""))
        where.append(f"{group} IS NOT NULL")
        measured = {"count": "g.n", "sum": "g.s", "distinct": "g.d", "last": f"({self.now} - g.l)"}[node.measure]
        inner = (f"SELECT e.user_id AS user_id, {group} AS grp, {', '.join(columns)} FROM {self.typed.table} e "
                 f"WHERE {' AND '.join(where)} GROUP BY e.user_id, grp")
        ok = j.compare_number(measured, node.compare)
        scored = f"SELECT g.*, CASE WHEN {ok} THEN 1 ELSE 0 END AS ok FROM ({inner}) g"
        ranked = measured.replace("g.", "r.")
        kept = ", ".join(f"t.{c}" for c in ("user_id", *names, "ok"))
        self.ctes[LEAF + a] = (f"SELECT {kept} FROM (SELECT r.*, ROW_NUMBER() OVER (PARTITION BY r.user_id ORDER BY "
                        f"r.ok DESC, {ranked} DESC, r.grp{j.C} DESC) AS rn FROM ({scored}) r) t WHERE t.rn = 1")
        self.by_user[LEAF + a] = ("user_id", *names, "ok")
        self.joined[a] = (*names, "ok")
        return a, (*names, "ok"), f"(COALESCE(j.{a}_ok, 0) = 1)"

    def _activity(self) -> None:
        if self.top and "j.act_last AS act_last" not in self.selects:
            self.selects.append("j.act_last AS act_last")

    def active_days(self, node: ActiveDays) -> tuple[str, tuple[str, ...], str]:
        self._activity()
        a = self.alias()
        pg = self.json.pg
        # Each user's last activity (the log's users, made before) and time zone, once per user (not a profile
        # read per event); only the users whose days can matter (``setup``: ``sql_days.DaysUses``).
        act = f"{LEAF}act_{a}"
        self.ctes[act] = ""
        self.by_user[act] = ("user_id", "last", "has_other", "zone")
        zone = f"COALESCE(act.zone, {self.params.add(self.business_tz)})"
        within = self.params.add(node.within_us)
        day = local_day_sql(self.json, "e.ts_us", zone, self.zones, self.business_tz)
        self.ctes[LEAF + a] = pg_active_days(act, within, day) if pg else \
            sqlite_active_days(act, within, day, self.params.add(2 * DAY_US))
        self.by_user[LEAF + a] = ("user_id", "days")
        self.joined[a] = ("days",)
        return a, ("days",), self.json.compare_number(f"COALESCE(j.{a}_days, 0)", node.compare)

    def pattern(self, node: Pattern) -> tuple[str, tuple[str, ...], str]:
        if node.first in node.not_followed_by:
            raise NotCompilable("a pattern whose first event also closes it")
        j, add = self.json, self.params.add
        a = self.alias()
        names = ", ".join(add(n) for n in (node.first, *node.not_followed_by))
        opening = f"CASE WHEN e.name = {add(node.first)} THEN 1 ELSE 0 END"
        # Only the events after ``as_of - leaves_after`` matter: an entity opened before is not open any more, and
        # a closing event before every opening event that can still be open closes none of them.
        events = f"{self.typed.table} e"
        where = [f"e.name IN ({names})", f"e.ts_us > {add(self.as_of_us - node.leaves_after_us)}"]
        single = j.prop(TYPED, node.same)
        source, element = j.elements(TYPED, node.same + "s")
        singles = " AND ".join([*where, j.is_scalar(single)])
        plurals = " AND ".join([*where, f"NOT {j.is_scalar(single)}", j.is_scalar(element)])
        ents = (
            f"SELECT e.user_id AS user_id, e.id AS id, e.ts_us AS ts_us, {opening} AS opens, "
            f"{j.key(single)} AS entity FROM {events} WHERE {singles} "
            f"UNION ALL SELECT e.user_id, e.id, e.ts_us, {opening}, {j.key(element)} "
            f"FROM {events} CROSS JOIN {source} WHERE {plurals}"
        )
        # An opening event stays open while no closing event (by the instant) follows it for its entity: the closing
        # events counted after it in a window over the entity's events in reverse order. At the same instant a
        # closing event comes after an opening one when it came later in the log (event time), or always (before).
        tie = "x.id DESC" if SAME_INSTANT_BY_ARRIVAL else "x.opens ASC, x.id DESC"
        marks = (
            f"SELECT x.*, COALESCE(SUM(1 - x.opens) OVER (PARTITION BY x.user_id, x.entity ORDER BY x.ts_us DESC, "
            f"{tie} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS later FROM ents_{a} x "
            f"WHERE x.opens = 1 OR x.ts_us <= {self.now}"
        )
        opens = (
            f"SELECT f.user_id AS user_id, f.entity AS entity, f.ts_us AS ts_us, f.id AS id, "
            f"ROW_NUMBER() OVER (PARTITION BY f.user_id, f.entity ORDER BY f.ts_us, f.id) AS rn FROM marks_{a} f "
            f"WHERE f.opens = 1 AND f.later = 0 AND f.ts_us + {add(node.within_us)} <= {self.now} "
            f"AND f.ts_us + {add(node.leaves_after_us)} > {self.now}"
        )
        # The open entities (the first opening event of each) are kept in a table of their own: the setup counts
        # them per user and the members' facets read them again (the pattern is computed once).
        self.tables[OPENS + a] = (f"WITH ents_{a} AS ({ents}), marks_{a} AS ({marks}) SELECT o.user_id AS user_id, "
                                  f"o.entity AS entity, o.ts_us AS ts_us, o.id AS id FROM ({opens}) o WHERE o.rn = 1")
        self.ctes[LEAF + a] = f"SELECT user_id, COUNT(*) AS n_open FROM {OPENS}{a} GROUP BY user_id"
        self.by_user[LEAF + a] = ("user_id", "n_open")
        self.joined[a] = ("n_open",)
        return a, ("n_open",), f"(COALESCE(j.{a}_n_open, 0) > 0)"

    @staticmethod
    def _facets(a: str) -> str:
        # The payload looked up by the log's key, (user_id, id): a join by id alone hashed every event on PostgreSQL.
        return (f"SELECT o.user_id, o.entity, o.ts_us, (SELECT ev.payload FROM events ev WHERE ev.user_id = o.user_id "
                f"AND ev.id = o.id) FROM {OPENS}{a} o")

    def in_segment(self, node: InSegment) -> str:
        other = self.segments.get(node.key)
        if other is None:
            predicate = "(1 = 0)"
        elif node.key in self.fresh:
            if node.key in self.inlining:
                raise NotCompilable(f"segments refer to each other through {node.key}")
            top, self.top = self.top, False
            self.inlining.append(node.key)
            try:
                predicate = self.condition(other.condition)
            finally:
                self.inlining.pop()
                self.top = top
        else:
            predicate = (f"EXISTS (SELECT 1 FROM segment_members sm WHERE sm.segment_key = {self.params.add(node.key)} "
                         "AND sm.user_id = j.user_id)")
        if self.top:
            a = self.alias()
            self.leaves.append(Leaf(node, a))
            self.selects.append(f"CASE WHEN {predicate} THEN 1 ELSE 0 END AS {a}_in")
        return predicate

    def query(self, segment: Segment) -> CompiledSegment:
        self.selects, self.leaves, self.facet_sql, self.top, self.inlining = [], [], {}, True, []
        self.segment_key = segment.key
        member = self.condition(segment.condition)
        key = self.params.add(segment.key)
        selects = ", ".join(["j.user_id AS user_id", "p.traits AS traits", *self.selects,
                             f"CASE WHEN {member} THEN 1 ELSE 0 END AS member"])
        sql = (f"SELECT {selects} FROM {LEAVES} j LEFT JOIN profiles p ON p.user_id = j.user_id "
               f"WHERE {member} OR j.user_id IN "
               f"(SELECT sm.user_id FROM segment_members sm WHERE sm.segment_key = {key})")
        return CompiledSegment(segment, sql, self.params.values, list(self.leaves), dict(self.facet_sql))

    def setup(self) -> str:
        """Every user in the log with every leaf's columns: the log's users (with the last activity) joined by user
        to the one pass (scored) and to the other leaves, each a temporary table made before with one row per user
        (on SQLite keyed by user: each user looked up, no sort of them all)."""
        for a, uses in self.days_uses.items():
            self.ctes[f"{LEAF}act_{a}"] = uses.act_users(self.json, timezone_sql)
        if self.passed:
            # The pass is a table of its own, made first: PostgreSQL plans what reads it with its true size.
            passed = "".join(f", {expr} AS {name}" for name, expr in self.passed.items())
            # Only the events of the names it aggregates reach its grouping (the others are a pattern's or a per
            # group's, read apart).
            names = ", ".join(self.params.add(name) for name in sorted(self.pass_names))
            one_pass = (f"SELECT e.user_id AS user_id{passed} FROM {self.typed.table} e WHERE e.name IN ({names}) "
                        "GROUP BY e.user_id")
            scored = "".join(f", {expr} AS {name}" for name, expr in self.scored.items())
            self.tables[USER_AGGREGATES] = f"SELECT g.*{scored} FROM ({one_pass}) g"
            self.by_user[USER_AGGREGATES] = ("user_id", *self.passed, *self.scored)
        self.tables.update(self.ctes)
        selects = ["u.user_id AS user_id", "u.act_last AS act_last"]
        joins = []
        if self.passed:
            selects += [f"g.{name} AS {name}" for name in [*self.passed, *self.scored]]
            joins.append(f"LEFT JOIN {USER_AGGREGATES} g ON g.user_id = u.user_id")
        for alias, columns in self.joined.items():
            selects += [f"{alias}.{c} AS {alias}_{c}" for c in columns]
            joins.append(f"LEFT JOIN {LEAF}{alias} {alias} ON {alias}.user_id = u.user_id")
        return f"SELECT {', '.join(selects)} FROM {LOG_USERS} u {' '.join(joins)}"


def compile_rebuild(segments: dict[str, Segment], keys: list[str], dialect: str, as_of_us: int,
                    typed: TypedEvents, *, business_tz: str = "Asia/Bangkok", zones: list[str] | None = None,
                    fresh: set[str] | None = None, max_zones: int | None = None) -> CompiledRebuild:
    """Compile ``keys`` (in this order) for ``dialect`` at ``as_of_us`` over the typed events ``typed``.

    ``zones``: the time zones the users' ``timezone`` traits name (for active days; more than ``max_zones``: a
    segment with active days is not compiled); ``fresh``: the segments whose membership an ``in segment`` condition
    computes afresh (default: all), the others are read as stored.
    """
    compiler = _Compiler(dialect, segments, as_of_us, business_tz, zones or [],
                         set(segments) if fresh is None else fresh, typed)
    out: dict[str, CompiledSegment] = {}
    skipped: dict[str, str] = {}
    for key in keys:
        segment = segments[key]
        if max_zones is not None and len(zones or []) > max_zones and any(
                isinstance(n, ActiveDays) for n in feeds.walk(segment.condition)):
            skipped[key] = f"{len(zones or [])} time zones"
            continue
        try:
            out[key] = compiler.query(segment)
        except NotCompilable as exc:
            skipped[key] = str(exc)
    setup = compiler.setup()
    return CompiledRebuild(setup, dict(compiler.tables), compiler.params.values, out, skipped, dict(compiler.by_user))
