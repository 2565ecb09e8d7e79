"""The five default segments computed by DuckDB from the exported events (run by ``bench.segment_rebuild`` in a
subprocess, so DuckDB's memory is not the engine's).

``python -m growthengine.bench.duckdb_segments EVENTS.csv AS_OF_US BY_ARRIVAL`` prints one JSON object: the seconds
DuckDB took to load the file and to answer, and the members it found per segment (rows: cart abandoners count one
per open cart item, as the engine stores them). The queries are the default segments' definitions
(``config/default.yaml``) written by hand over typed columns; ``BY_ARRIVAL`` (1/0) says whether a closing event at
the same instant as an opening one closes it only when it came later in the log.
"""

from __future__ import annotations

import json
import sys
import time

DAY = 86_400_000_000
HOUR = 3_600_000_000
ACTIVITY = "('track', 'page', 'screen')"

_COLUMNS = ("{'id': 'BIGINT', 'user_id': 'VARCHAR', 'type': 'VARCHAR', 'name': 'VARCHAR', 'ts_us': 'BIGINT', "
            "'amount': 'DOUBLE', 'province': 'VARCHAR', 'listings': 'VARCHAR'}")


def queries(by_arrival: bool) -> dict[str, str]:
    tie = "c.id > f.id" if by_arrival else "TRUE"
    return {
        "high_ltv": (
            "SELECT COUNT(*) FROM (SELECT user_id FROM ev WHERE name IN ('purchase', 'item_sold') GROUP BY user_id "
            "HAVING COALESCE(SUM(amount) FILTER (WHERE name = 'purchase'), 0) > 5000 "
            "OR COUNT(*) FILTER (WHERE name = 'item_sold') > 10)"),
        "window_shoppers": (
            f"SELECT COUNT(*) FROM (SELECT user_id FROM ev WHERE ts_us > $1 - {7 * DAY} AND ts_us <= $1 "
            "AND name IN ('item_viewed', 'purchase') GROUP BY user_id "
            "HAVING COUNT(*) FILTER (WHERE name = 'item_viewed') > 20 "
            "AND COUNT(*) FILTER (WHERE name = 'purchase') = 0)"),
        "local_buyers": (
            f"SELECT COUNT(DISTINCT user_id) FROM (SELECT user_id, province FROM ev WHERE name = 'location_searched' "
            f"AND province IS NOT NULL AND ts_us > $1 - {30 * DAY} AND ts_us <= $1 GROUP BY user_id, province "
            "HAVING COUNT(*) > 5)"),
        "cart_abandoners": (
            "WITH ents AS (SELECT e.id, e.user_id, e.ts_us, e.name = 'add_to_cart' AS opens, l.entity FROM ev e, "
            "unnest(string_split(e.listings, '|')) AS l(entity) "
            "WHERE e.name IN ('add_to_cart', 'purchase', 'remove_from_cart') AND e.listings IS NOT NULL) "
            f"SELECT COUNT(*) FROM (SELECT DISTINCT f.user_id, f.entity FROM ents f WHERE f.opens "
            f"AND f.ts_us + {HOUR} <= $1 AND f.ts_us + {7 * DAY} > $1 AND NOT EXISTS (SELECT 1 FROM ents c "
            "WHERE NOT c.opens AND c.user_id = f.user_id AND c.entity = f.entity AND c.ts_us <= $1 "
            f"AND (c.ts_us > f.ts_us OR (c.ts_us = f.ts_us AND {tie}))))"),
        "churn_risk": (
            f"WITH act AS (SELECT user_id, MAX(ts_us) AS last FROM ev WHERE type IN {ACTIVITY} GROUP BY user_id) "
            f"SELECT COUNT(*) FROM (SELECT a.user_id FROM act a JOIN ev e ON e.user_id = a.user_id "
            f"AND e.type IN {ACTIVITY} AND e.ts_us > a.last - {60 * DAY} WHERE $1 - a.last > {30 * DAY} "
            f"GROUP BY a.user_id HAVING COUNT(DISTINCT (e.ts_us + {7 * HOUR}) // {DAY}) >= 10)"),
    }


def main(argv: list[str]) -> None:
    import duckdb

    path, as_of_us, by_arrival = argv[0], int(argv[1]), argv[2] == "1"
    con = duckdb.connect()
    start = time.perf_counter()
    con.execute(f"CREATE TABLE ev AS SELECT * FROM read_csv(?, header = true, columns = {_COLUMNS})", [path])
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    members = {key: int(con.execute(sql, [as_of_us] if "$1" in sql else []).fetchone()[0])  # type: ignore[index]
               for key, sql in queries(by_arrival).items()}
    query_s = time.perf_counter() - start
    print(json.dumps({"load_s": load_s, "query_s": query_s, "members": {k: v for k, v in members.items() if v}}))


if __name__ == "__main__":
    main(sys.argv[1:])
