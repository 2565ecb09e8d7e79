"""Active days on SQLite: the distinct local days of a user's activity in a window, counted from the log's
(user, instant) index (instants and ids only: no row read, no copy of the log)."""

from __future__ import annotations

from growthengine.segments.sql_plan import NON_ACTIVITY
from growthengine.segments.sql_typed import USER_ORDER


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
