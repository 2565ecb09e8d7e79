"""A segment's condition compiled to one SQL query over the event log: per user, membership at an instant.

The query reads ``events`` (not the ``type='command'`` rows) and ``profiles``, and yields one row per user who is a
member at ``as_of`` or is stored as one (so a rebuild sees its exits), with the aggregates each leaf of the condition
measured (counts, sums, distinct counts, the last event time, the qualifying group of a ``per`` rule, the days of
activity) and ``member``. The membership is decided in SQL; :mod:`growthengine.segments.sql_rebuild` hands the
aggregates to the Python evaluator to word the reason, so reasons read the same whichever way a segment is rebuilt.

Each leaf is a common table expression of per-user aggregates joined to the users in the log:

* ``EventAggregate``: ``COUNT``/``SUM``/``COUNT(DISTINCT)``/``MAX(ts_us)`` of the events of one name, filtered by
  their properties, within ``(as_of - within, as_of]`` or over the lifetime; with ``per``, the best group by
  ``ROW_NUMBER()`` (qualifying first, then the largest value, then the largest group, as the evaluator picks it);
* ``Inactive`` / ``ActiveDays``: the last activity (track, page, screen) and the distinct local days of activity
  after ``last - within``, in the user's ``timezone`` trait or the business time zone;
* ``Pattern``: per entity (``listing_id``, or each of ``listing_ids``) the opening events due by ``as_of`` and not yet
  left, with no closing event at or after them (at the same instant: after them in the log when the evaluator
  orders same-instant events by arrival), the first such per entity; window functions over each entity's events,
  no anti-join (whose plan depends on estimates a database cannot make for JSON-derived entities);
* ``TraitCondition`` on ``profiles.traits``; ``InSegment`` inlines the other segment's condition (a fresh answer,
  as the batch evaluator gives it) or, for a segment not being rebuilt, reads its stored members.

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

from dataclasses import dataclass, field
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
from growthengine.segments.sql_json import TYPED, JsonSql, NotCompilable, Params, local_day_sql
from growthengine.segments.sql_typed import TypedEvents

__all__ = ["CompiledSegment", "Leaf", "NotCompilable", "compile_segment", "timezone_sql"]

ACTIVITY = "('track', 'page', 'screen')"
_TYPES = {"grp": "text", "s": "numeric"}  # of the leaves' columns; the others are whole numbers
SAME_INSTANT_BY_ARRIVAL = hasattr(feeds, "closing_order")
"""Whether the evaluator orders a pattern's events at one instant by their log id (event-time patterns) or lets a
closing event close every opening event of its instant (before event time landed)."""


@dataclass(frozen=True)
class Leaf:
    """A leaf of the segment's own condition and the names of its columns in the result rows."""

    node: EventAggregate | Inactive | ActiveDays | Pattern | InSegment
    alias: str


@dataclass
class CompiledSegment:
    segment: Segment
    sql: str
    params: dict[str, Any]
    leaves: list[Leaf] = field(default_factory=list)
    facet_sql: dict[str, str] = field(default_factory=dict)
    """Per pattern leaf (its alias): the open entities, rows of (user_id, entity, ts_us, payload)."""


def timezone_sql(json: JsonSql, traits_doc: str) -> str:
    """The ``timezone`` trait when it is a non-empty string (the evaluator's ``_tz``), else NULL."""
    value = json.prop(traits_doc, "timezone")
    return f"(CASE WHEN {value.typ} = {json.STR} AND {value.text} <> '' THEN {value.text} END)"


class _Compiler:
    def __init__(self, dialect: str, segments: dict[str, Segment], as_of_us: int, business_tz: str,
                 zones: list[str], fresh: set[str], typed: TypedEvents | None = None) -> None:
        self.params = Params()
        self.typed = typed
        self.json = JsonSql(dialect, self.params, typed.columns if typed else None)
        self.log = typed.table if typed else "events"
        self.segments = segments
        self.as_of_us = as_of_us
        self.now = self.params.add(as_of_us)
        self.business_tz = business_tz
        self.zones = zones
        self.fresh = fresh
        self.ctes: dict[str, str] = {}
        self.columns: list[tuple[str, str]] = []  # (leaf alias, column): every leaf's, gathered per user in j
        self.selects: list[str] = []
        self.leaves: list[Leaf] = []
        self.facet_sql: dict[str, str] = {}
        self.count = 0
        self.top = True
        self.inlining: list[str] = []

    def alias(self) -> str:
        self.count += 1
        return f"l{self.count}"

    def condition(self, node: Condition) -> str:
        if isinstance(node, All):
            return "(" + " AND ".join(self.condition(c) for c in node.items) + ")" if node.items else "(1 = 1)"
        if isinstance(node, AnyOf):
            return "(" + " OR ".join(self.condition(c) for c in node.items) + ")" if node.items else "(1 = 0)"
        if isinstance(node, Not):
            return f"(NOT {self.condition(node.item)})"
        if isinstance(node, TraitCondition):
            doc = self.json.doc("p.traits")
            return self.json.compare(self.json.prop(doc, node.trait), node.compare, doc, node.trait)
        if isinstance(node, InSegment):
            return self.in_segment(node)
        if isinstance(node, (Inactive, ActiveDays)):
            return self.activity(node)
        if isinstance(node, Pattern):
            return self.pattern(node)
        return self.aggregate(node)

    def _leaf(self, node: EventAggregate | Inactive | ActiveDays | Pattern | InSegment, alias: str,
              columns: tuple[str, ...]) -> None:
        self.columns.extend((alias, c) for c in columns)
        if self.top:
            self.leaves.append(Leaf(node, alias))
            self.selects.extend(f"j.{alias}_{c} AS {alias}_{c}" for c in columns)

    # Leaves ---------------------------------------------------------------------------------------------

    def events(self, base: list[str]) -> tuple[str, list[str], str]:
        """The events matching ``base`` as a FROM item ``e``, the conditions still to apply, their payload document.

        PostgreSQL parses each payload once, in a subquery that ``OFFSET 0`` keeps apart (folded into the query, the
        cast would parse the text again at every use of a property).
        """
        if self.typed is not None:
            return f"{self.typed.table} e", list(base), TYPED
        if self.json.pg:
            return (f"(SELECT e.id, e.user_id, e.name, e.ts_us, e.payload, CAST(e.payload AS jsonb) AS pj "
                    f"FROM events e WHERE {' AND '.join(base)} OFFSET 0) e", [], "e.pj")
        return "events e", list(base), "e.payload"

    def aggregate(self, node: EventAggregate) -> str:
        j, add = self.json, self.params.add
        a = self.alias()
        base = ["e.type <> 'command'", f"e.name = {add(node.event)}"]
        if node.within_us is not None:
            base += [f"e.ts_us > {add(self.as_of_us - node.within_us)}", f"e.ts_us <= {self.now}"]
        source, where, doc = self.events(base)
        for f in node.where:
            where.append(j.compare(j.prop(doc, f.prop), f.compare, doc, f.prop))
        columns = ["COUNT(*) AS n", "MAX(e.ts_us) AS l"]
        names = ["n", "l"]
        if node.measure in ("sum", "distinct"):
            if node.of is None:
                raise NotCompilable(f"{node.measure} without a property")
            value = j.prop(doc, node.of)
            if node.measure == "sum":
                columns += [f"SUM({j.summand(value)}) AS s", f"MAX({j.float_flag(value)}) AS fl"]
                names += ["s", "fl"]
            else:
                columns.append(f"COUNT(DISTINCT {j.key(value)}) AS d")
                names.append("d")
        group_by = "e.user_id"
        if node.per is not None:
            group = j.key(j.prop(doc, node.per))
            columns.insert(0, f"{group} AS grp")
            where.append(f"{group} IS NOT NULL")
            group_by += ", grp"
            names.append("grp")
        measured = {"count": "g.n", "sum": "g.s", "distinct": "g.d", "last": f"({self.now} - g.l)"}[node.measure]
        ok = j.compare_number(measured, node.compare)
        inner = (f"SELECT e.user_id AS user_id, {', '.join(columns)} FROM {source} "
                 f"WHERE {' AND '.join(where) or '1 = 1'} GROUP BY {group_by}")
        scored = f"SELECT g.*, CASE WHEN {ok} THEN 1 ELSE 0 END AS ok FROM ({inner}) g"
        if node.per is None:
            self.ctes[a] = scored
            empty = None if node.measure == "last" else 0
            default = 1 if compare(empty, node.compare) else 0
        else:
            ranked = measured.replace("g.", "r.")
            self.ctes[a] = (f"SELECT t.* FROM (SELECT r.*, ROW_NUMBER() OVER (PARTITION BY r.user_id ORDER BY "
                            f"r.ok DESC, {ranked} DESC, r.grp{j.C} DESC) AS rn FROM ({scored}) r) t WHERE t.rn = 1")
            default = 0
        self._leaf(node, a, (*names, "ok"))
        return f"(COALESCE(j.{a}_ok, {default}) = 1)"

    def _activity_cte(self) -> None:
        if "act" not in self.ctes:
            self.ctes["act"] = (f"SELECT e.user_id AS user_id, MAX(e.ts_us) AS last FROM {self.log} e "
                                f"WHERE e.type IN {ACTIVITY} GROUP BY e.user_id")
            self.columns.append(("act", "last"))
            self.selects.append("j.act_last AS act_last")

    def activity(self, node: Inactive | ActiveDays) -> str:
        self._activity_cte()
        if isinstance(node, Inactive):
            if self.top:
                self.leaves.append(Leaf(node, "act"))
            return f"(j.act_last IS NOT NULL AND {self.now} - j.act_last > {self.params.add(node.more_than_us)})"
        a = self.alias()
        zones = (f"(SELECT pz.user_id, {timezone_sql(self.json, self.json.doc('pz.traits'))} AS zone "
                 f"FROM profiles pz{' OFFSET 0' if self.json.pg else ''})")  # each user's traits parsed once
        zone = f"COALESCE(pz.zone, {self.params.add(self.business_tz)})"
        day = local_day_sql(self.json, "e.ts_us", zone, self.zones, self.business_tz)
        self.ctes[a] = (f"SELECT act.user_id AS user_id, COUNT(DISTINCT {day}) AS days FROM act "
                        f"JOIN {self.log} e ON e.user_id = act.user_id AND e.ts_us > act.last - "
                        f"{self.params.add(node.within_us)} LEFT JOIN {zones} pz ON pz.user_id = act.user_id "
                        f"WHERE e.type IN {ACTIVITY} GROUP BY act.user_id")
        self._leaf(node, a, ("days",))
        return self.json.compare_number(f"COALESCE(j.{a}_days, 0)", node.compare)

    def pattern(self, node: Pattern) -> str:
        if node.first in node.not_followed_by:
            raise NotCompilable("a pattern whose first event also closes it")
        j, add = self.json, self.params.add
        a = self.alias()
        names = ", ".join(add(n) for n in (node.first, *node.not_followed_by))
        opens = f"CASE WHEN e.name = {add(node.first)} THEN 1 ELSE 0 END"
        events, where, doc = self.events(["e.type <> 'command'", f"e.name IN ({names})"])
        single = j.prop(doc, node.same)
        source, element = j.elements(doc, node.same + "s")
        singles = " AND ".join([*where, j.is_scalar(single)])
        plurals = " AND ".join([*where, f"NOT {j.is_scalar(single)}", j.is_scalar(element)])
        self.ctes[f"ents_{a}"] = (
            f"SELECT e.user_id AS user_id, e.id AS id, e.ts_us AS ts_us, {opens} AS opens, "
            f"{j.key(single)} AS entity FROM {events} WHERE {singles} "
            f"UNION ALL SELECT e.user_id, e.id, e.ts_us, {opens}, {j.key(element)} "
            f"FROM {events} CROSS JOIN {source} WHERE {plurals}"
        )
        # An opening event stays open while no closing event (by the instant) follows it for its entity: the closing
        # events counted after it in a window over the entity's events in reverse order. At the same instant a
        # closing event comes after an opening one when it came later in the log (event time), or always (before).
        tie = "x.id DESC" if SAME_INSTANT_BY_ARRIVAL else "x.opens ASC, x.id DESC"
        self.ctes[f"marks_{a}"] = (
            f"SELECT x.*, COALESCE(SUM(1 - x.opens) OVER (PARTITION BY x.user_id, x.entity ORDER BY x.ts_us DESC, "
            f"{tie} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS later FROM ents_{a} x "
            f"WHERE x.opens = 1 OR x.ts_us <= {self.now}"
        )
        self.ctes[f"opens_{a}"] = (
            f"SELECT f.user_id AS user_id, f.entity AS entity, f.ts_us AS ts_us, f.id AS id, "
            f"ROW_NUMBER() OVER (PARTITION BY f.user_id, f.entity ORDER BY f.ts_us, f.id) AS rn FROM marks_{a} f "
            f"WHERE f.opens = 1 AND f.later = 0 AND f.ts_us + {add(node.within_us)} <= {self.now} "
            f"AND f.ts_us + {add(node.leaves_after_us)} > {self.now}"
        )
        self.ctes[a] = f"SELECT user_id, COUNT(*) AS n_open FROM opens_{a} WHERE rn = 1 GROUP BY user_id"
        if self.top:
            steps = ", ".join(f"{name}_{a} AS ({self.ctes[f'{name}_{a}']})" for name in ("ents", "marks", "opens"))
            self.facet_sql[a] = (f"WITH {steps} SELECT o.user_id, o.entity, o.ts_us, ev.payload FROM opens_{a} o "
                                 "JOIN events ev ON ev.id = o.id WHERE o.rn = 1")
        self._leaf(node, a, ("n_open",))
        return f"(COALESCE(j.{a}_n_open, 0) > 0)"

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
        member = self.condition(segment.condition)
        key = self.params.add(segment.key)
        # SQLite would run a CTE joined to every user again per user (a co-routine): each is computed once.
        materialized = "" if self.json.pg else "MATERIALIZED "
        ctes = [f"{name} AS {materialized}({body})" for name, body in self.ctes.items()]
        # Every user in the log, with each leaf's columns: one row per user and leaf, gathered by a GROUP BY (no
        # join of the users to each leaf, which SQLite may run as a scan of the leaf per user).
        names = [f"{a}_{c}" for a, c in self.columns]
        nulls = {c: f"CAST(NULL AS {_TYPES.get(c, 'bigint')})" for _, c in self.columns}  # PostgreSQL wants types
        users = (f" FROM (SELECT DISTINCT user_id FROM {self.typed.table}) u" if self.typed else
                 " FROM (SELECT DISTINCT user_id FROM events) u WHERE EXISTS (SELECT 1 FROM events c WHERE "
                 "c.user_id = u.user_id AND c.type <> 'command')")  # the users index alone, then a seek per user
        parts = ["SELECT u.user_id" + "".join(f", {nulls[c]} AS {a}_{c}" for a, c in self.columns) + users]
        for alias in dict.fromkeys(a for a, _ in self.columns):
            values = [f"{a}.{c}" if a == alias else nulls[c] for a, c in self.columns]
            parts.append(f"SELECT {alias}.user_id, {', '.join(values)} FROM {alias}")
        gathered = "".join(f", MAX({n}) AS {n}" for n in names)
        ctes.append(f"j AS (SELECT user_id{gathered} FROM ({' UNION ALL '.join(parts)}) x GROUP BY user_id)")
        selects = ", ".join(["j.user_id AS user_id", "p.traits AS traits", *self.selects,
                             f"CASE WHEN {member} THEN 1 ELSE 0 END AS member"])
        sql = (f"WITH {', '.join(ctes)} SELECT {selects} FROM j LEFT JOIN profiles p ON p.user_id = j.user_id "
               f"WHERE {member} OR j.user_id IN "
               f"(SELECT sm.user_id FROM segment_members sm WHERE sm.segment_key = {key})")
        return CompiledSegment(segment, sql, dict(self.params.values), list(self.leaves), dict(self.facet_sql))


def compile_segment(segment: Segment, segments: dict[str, Segment], dialect: str, as_of_us: int, *,
                    business_tz: str = "Asia/Bangkok", zones: list[str] | None = None,
                    fresh: set[str] | None = None, typed: TypedEvents | None = None) -> CompiledSegment:
    """Compile ``segment`` for ``dialect`` at ``as_of_us``.

    ``zones``: the time zones the users' ``timezone`` traits name (for active days); ``fresh``: the segments whose
    membership an ``in segment`` condition computes afresh (default: all), the others are read as stored;
    ``typed``: the events read from the rebuild's typed table (``sql_typed``), made before, not from the payloads.
    """
    compiler = _Compiler(dialect, segments, as_of_us, business_tz, zones or [],
                         set(segments) if fresh is None else fresh, typed)
    return compiler.query(segment)
