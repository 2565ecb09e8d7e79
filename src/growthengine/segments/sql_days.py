"""Active days in a set-based rebuild: which users' days are counted at all (:class:`DaysUses`), and on SQLite the
distinct local days of a user's activity in a window, counted from the log's (user, instant) index (instants and
ids only: no row read, no copy of the log).

Counting a user's active days reads every activity event of the window: most of the log. An active-days leaf that
stands in an ``all`` beside an ``inactive`` leaf (a churn segment: quiet now, active before) decides nothing for a
user who is not inactive (the ``all`` is false whatever the days), so its days are counted only for the users the
``inactive`` leaf holds for, and for the users stored as members of a segment that reads it (their exits' reasons
are worded by the evaluator from every leaf). A leaf read anywhere else is counted for every user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from growthengine.segments.model import ActiveDays, Condition, Inactive
from growthengine.segments.sql_json import JsonSql, Params
from growthengine.segments.sql_plan import LOG_USERS, NON_ACTIVITY
from growthengine.segments.sql_typed import ACTIVITY, USER_ORDER


def inactive_guard(items: Sequence[Condition], now: str, params: Params) -> str | None:
    """Over the log's users ``u``: the ``inactive`` leaves among an ``all``'s items all hold (None: there are none,
    or no active-days leaf among them to guard)."""
    if not any(isinstance(item, ActiveDays) for item in items):
        return None
    held = [f"(u.act_last IS NOT NULL AND {now} - u.act_last > {params.add(item.more_than_us)})"
            for item in items if isinstance(item, Inactive)]
    return " AND ".join(held) or None


@dataclass
class DaysUses:
    """Where one active-days leaf is read: each use's guard (None: counted for every user) and the segments whose
    queries read it (their stored members are counted too)."""

    guards: list[str | None] = field(default_factory=list)
    segments: set[str] = field(default_factory=set)

    def add(self, guard: str | None, segment: str) -> None:
        self.guards.append(guard)
        self.segments.add(segment)

    def act_users(self, json: JsonSql, timezone_sql: Callable[[JsonSql, str], str]) -> str:
        """The users whose days are counted, with the last activity and the ``timezone`` trait (each user's traits
        parsed once, after the join: only the users kept)."""
        where = "u.act_last IS NOT NULL"
        if self.guards and None not in self.guards:
            keys = ", ".join(json.p.add(key) for key in sorted(self.segments))
            held = " OR ".join(g for g in dict.fromkeys(self.guards) if g is not None)
            where += (f" AND ({held} OR u.user_id IN (SELECT sm.user_id FROM segment_members sm "
                      f"WHERE sm.segment_key IN ({keys})))")
        fence = " OFFSET 0" if json.pg else ""
        users = (f"SELECT u.user_id AS user_id, u.act_last AS last, u.has_other AS has_other, "
                 f"{json.doc('pz.traits')} AS traits FROM {LOG_USERS} u LEFT JOIN profiles pz "
                 f"ON pz.user_id = u.user_id WHERE {where}{fence}")
        return (f"SELECT x.user_id AS user_id, x.last AS last, x.has_other AS has_other, "
                f"{timezone_sql(json, 'x.traits')} AS zone FROM ({users}) x")


def pg_active_days(act: str, within: str, day: str) -> str:
    """PostgreSQL: per user of ``act``, the distinct local days (``day``, at ``e.ts_us``) of the activity events in
    the window, by two hashed groupings (not a sort of every event for ``COUNT(DISTINCT ...)``)."""
    days = (f"FROM {act} act JOIN events e ON e.user_id = act.user_id AND e.ts_us > act.last - {within} "
            f"WHERE e.type IN {ACTIVITY}")
    return (f"SELECT d.user_id AS user_id, COUNT(d.day) AS days FROM (SELECT act.user_id AS user_id, {day} AS day "
            f"{days} GROUP BY act.user_id, {day}) d GROUP BY d.user_id")


def sqlite_active_days(act: str, within: str, day: str, two_days: str) -> str:
    """Per user, the local days of every event in the window, from the log's (user, instant) index, less the days
    whose events in the window are none of them activity (found from the few that are not, each such day's events
    counted again in the index). ``act``: each user's last activity and zone; ``day``: an event's local day at
    ``e.ts_us``; ``two_days``: the parameter holding two days in microseconds (two instants of one local day are
    less than 25 hours apart, in any zone)."""
    every = (f"SELECT act.user_id AS user_id, COUNT(DISTINCT {day}) AS days FROM {act} act JOIN events e "
             f"INDEXED BY {USER_ORDER} ON e.user_id = act.user_id AND e.ts_us > act.last - {within} "
             "AND e.ts_us <= act.last GROUP BY act.user_id")
    n_day = day.replace("e.ts_us", "n.ts_us")
    x_day = day.replace("e.ts_us", "x.ts_us").replace("act.zone", "d.zone")
    others = (f"SELECT n.user_id AS user_id, act.last AS last, act.zone AS zone, {n_day} AS day, COUNT(*) AS c, "
              f"MIN(n.ts_us) AS lo, MAX(n.ts_us) AS hi FROM {NON_ACTIVITY} n JOIN {act} act ON "
              f"act.user_id = n.user_id WHERE act.has_other = 1 AND n.ts_us > act.last - {within} "
              f"AND n.ts_us <= act.last GROUP BY n.user_id, day")
    only = (f"SELECT d.user_id AS user_id, COUNT(*) AS n FROM ({others}) d WHERE d.c = (SELECT COUNT(*) "
            f"FROM events x INDEXED BY {USER_ORDER} WHERE x.user_id = d.user_id AND x.ts_us > MAX(d.last - "
            f"{within}, d.lo - {two_days}) AND x.ts_us <= MIN(d.last, d.hi + {two_days}) AND {x_day} = d.day) "
            "GROUP BY d.user_id")
    return (f"SELECT t.user_id AS user_id, t.days - COALESCE(o.n, 0) AS days FROM ({every}) t "
            f"LEFT JOIN ({only}) o ON o.user_id = t.user_id")
