"""The KPI rollups' SQL (SQLite and PostgreSQL alike), built once from the definitions in ``definitions.py``.

Each statement works on a set of users (``:users``, an expanding list): their messages' facts are recomputed from
their newest ``message_events`` rows, each of their purchases and unsubscribes is credited to one message (the last
touch), and the rollups are moved by ``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE`` (minus what the
users' messages counted as before, plus what they count as now).

The set of users is one parameter (``:users``): a JSON array read with ``json_each`` on SQLite, an array with
``= ANY`` on PostgreSQL, so each statement's text is the same for every batch (an expanding list was compiled again
by SQLAlchemy at every call, for every one of the twenty statements a batch runs). Build them with
:func:`statements` for the connection's dialect and pass :func:`users_param` as ``users``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import sqlalchemy as sa

from growthengine.analytics.definitions import (
    CONTROL,
    CONVERSION_EVENT,
    DELIVERED,
    HOLDOUT,
    OPENED,
    TREATED,
    UNSUBSCRIBE_EVENT,
    WENT_OUT,
)
from growthengine.storage.analytics_schema import CHANNEL_COUNTERS, KPI_COUNTERS, REVENUE_SUMS

BUCKET_US = 900_000_000
"""The calendar's 15 minutes: every time zone's offset from UTC is a multiple of them."""


def _in(values: frozenset[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in sorted(values)) + ")"


WENT = f"e.status IN {_in(WENT_OUT)}"
# The instant a message counts at (its day): when it went out if it did, else its scheduledAt.
COUNT_AT = f"CASE WHEN {WENT} AND e.sent_us IS NOT NULL THEN e.sent_us ELSE e.scheduled_us END"
GROUP = f"CASE WHEN {WENT} THEN '{TREATED}' WHEN e.status = 'suppressed' AND e.reason = '{HOLDOUT}' " \
        f"THEN '{CONTROL}' ELSE '' END"
ANCHOR = f"CASE WHEN {WENT} THEN {COUNT_AT} WHEN e.status = 'suppressed' AND e.reason = '{HOLDOUT}' " \
         "THEN e.scheduled_us END"
NEWEST = ("e.id = (SELECT max(x.id) FROM message_events x WHERE x.user_id = e.user_id "
          "AND x.message_id = e.message_id)")

MISSING_BUCKETS = (
    f"SELECT DISTINCT q.b FROM (SELECT ({COUNT_AT}) / {BUCKET_US} AS b FROM message_events e "  # noqa: S608 (text of this module, never input)
    f"WHERE e.user_id IN :users UNION SELECT e.opened_us / {BUCKET_US} FROM message_events e "
    "WHERE e.user_id IN :users AND e.opened_us IS NOT NULL) q "
    "LEFT JOIN kpi_calendar c ON c.bucket = q.b WHERE c.bucket IS NULL"
)

FACTS = (
    "INSERT INTO kpi_messages (message_id, user_id, day, flow_key, step, channel, variant, kind, status, reason, grp, "  # noqa: S608 (text of this module, never input)
    "anchor_us, converted, unsubscribed, open_how, purchases, revenue) "
    f"SELECT e.message_id, e.user_id, cal.day, e.flow_key, e.step, e.channel, e.variant, e.kind, e.status, e.reason, "
    f"{GROUP}, {ANCHOR}, :no, :no, oh.how, 0, 0 FROM message_events e "
    f"JOIN kpi_calendar cal ON cal.bucket = ({COUNT_AT}) / {BUCKET_US} "
    f"LEFT JOIN kpi_calendar oh ON oh.bucket = e.opened_us / {BUCKET_US} "
    f"WHERE e.user_id IN :users AND {NEWEST}"
)

_LAST_TOUCH = ("(SELECT k.message_id FROM kpi_messages k WHERE k.user_id = p.user_id AND k.grp IN {groups} "
               "AND k.anchor_us <= p.ts_us AND k.anchor_us > p.ts_us - :window {also} "
               "ORDER BY k.anchor_us DESC, k.message_id DESC LIMIT 1)")


def credits_sql(dialect: str) -> tuple[str, str]:
    """Credit each purchase (to a treated or control message) and each unsubscribe (to a treated message on a
    channel it covers) of the users to the last message whose window holds it."""
    if dialect == "postgresql":
        amount = ("CASE WHEN jsonb_typeof(p.payload::jsonb -> 'amount') = 'number' "
                  "THEN (p.payload::jsonb ->> 'amount')::float8 ELSE 0 END")
        target = "(p.payload::jsonb ->> 'channel')"
    else:
        amount = ("CASE WHEN json_type(p.payload, '$.amount') IN ('integer', 'real') "
                  "THEN json_extract(p.payload, '$.amount') ELSE 0 END")
        target = "json_extract(p.payload, '$.channel')"
    covers = f"AND ({target} IS NULL OR {target} IN ('', 'all') OR {target} = k.channel)"
    statements = []
    for kind, name, groups, also, value in (
        ("p", CONVERSION_EVENT, f"('{TREATED}', '{CONTROL}')", "", amount),
        ("u", UNSUBSCRIBE_EVENT, f"('{TREATED}')", covers, "0"),
    ):
        touch = _LAST_TOUCH.format(groups=groups, also=also)
        statements.append(
            "INSERT INTO kpi_credits (user_id, event_id, kind, message_id, amount) "  # noqa: S608 (text of this module, never input)
            f"SELECT q.user_id, q.id, '{kind}', q.message_id, q.amount FROM (SELECT p.user_id, p.id, "
            f"{touch} AS message_id, {value} AS amount FROM events p WHERE p.user_id IN :users "
            f"AND p.type = 'track' AND p.name = '{name}') q WHERE q.message_id IS NOT NULL"
        )
    return statements[0], statements[1]


ATTRIBUTE = (
    "UPDATE kpi_messages SET "
    "purchases = (SELECT count(*) FROM kpi_credits c WHERE c.message_id = kpi_messages.message_id AND c.kind = 'p'), "
    "revenue = (SELECT COALESCE(SUM(c.amount), 0) FROM kpi_credits c WHERE c.message_id = kpi_messages.message_id "
    "AND c.kind = 'p'), "
    "converted = EXISTS (SELECT 1 FROM kpi_credits c WHERE c.message_id = kpi_messages.message_id AND c.kind = 'p'), "
    "unsubscribed = EXISTS (SELECT 1 FROM kpi_credits c WHERE c.message_id = kpi_messages.message_id "
    "AND c.kind = 'u') "
    "WHERE user_id IN :users AND grp <> '' AND EXISTS (SELECT 1 FROM kpi_credits c "
    "WHERE c.message_id = kpi_messages.message_id)"
)

USERS_WITH_MESSAGES = (
    "SELECT DISTINCT user_id FROM message_events WHERE user_id IN :users "
    "UNION SELECT DISTINCT user_id FROM kpi_messages WHERE user_id IN :users "
    "UNION SELECT DISTINCT user_id FROM kpi_credits WHERE user_id IN :users"
)
"""Which of the users could move a rollup: only they are recomputed for a purchase, an unsubscribe or a merge."""

USERS_WITH_FACTS = (
    "SELECT DISTINCT user_id FROM kpi_messages WHERE user_id IN :users "  # noqa: S608 (text of this module)
    "UNION SELECT DISTINCT user_id FROM kpi_credits WHERE user_id IN :users "
    "UNION SELECT DISTINCT user_id FROM events WHERE user_id IN :users AND type = 'track' "
    f"AND name IN ('{CONVERSION_EVENT}', '{UNSUBSCRIBE_EVENT}')"
)
"""Which of the users have something to take back or to credit: facts or credits already counted, or a purchase or
an unsubscribe to credit. For the others (a price drop's favoriters getting their first message) recomputing is
only adding their new facts: what the full recompute would subtract, forget, credit and attribute is empty."""

FORGET_FACTS = "DELETE FROM kpi_messages WHERE user_id IN :users"
FORGET_CREDITS = "DELETE FROM kpi_credits WHERE user_id IN :users"


def _flag(condition: str) -> str:
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


# What a message adds to each counter (k is its kpi_messages row): the definitions of definitions.py, in SQL.
COUNTER_SQL: dict[str, str] = {
    "decided": "COUNT(*)",
    "scheduled": _flag("k.status = 'scheduled'"),
    "sent": _flag(f"k.grp = '{TREATED}'"),
    "delivered": _flag(f"k.status IN {_in(DELIVERED)}"),
    "opened": _flag(f"k.status IN {_in(OPENED)}"),
    "clicked": _flag("k.status = 'clicked'"),
    "failed": _flag("k.status = 'failed'"),
    "suppressed": _flag("k.status = 'suppressed'"),
    "cancelled": _flag("k.status = 'cancelled'"),
    "control": _flag(f"k.grp = '{CONTROL}'"),
    "converted": _flag(f"k.grp = '{TREATED}' AND k.converted"),
    "control_converted": _flag(f"k.grp = '{CONTROL}' AND k.converted"),
    "unsubscribed": _flag(f"k.grp = '{TREATED}' AND k.unsubscribed"),
    "purchases": f"SUM(CASE WHEN k.grp = '{TREATED}' THEN k.purchases ELSE 0 END)",
    "push_sent": _flag(f"k.grp = '{TREATED}' AND k.channel = 'push'"),
    "push_opened": _flag(f"k.status IN {_in(OPENED)} AND k.channel = 'push'"),
    "email_sent": _flag(f"k.grp = '{TREATED}' AND k.channel = 'email'"),
    "email_opened": _flag(f"k.status IN {_in(OPENED)} AND k.channel = 'email'"),
    "revenue": f"SUM(CASE WHEN k.grp = '{TREATED}' THEN k.revenue ELSE 0 END)",
    "revenue_sq": f"SUM(CASE WHEN k.grp = '{TREATED}' THEN k.revenue * k.revenue ELSE 0 END)",
    "control_revenue": f"SUM(CASE WHEN k.grp = '{CONTROL}' THEN k.revenue ELSE 0 END)",
    "control_revenue_sq": f"SUM(CASE WHEN k.grp = '{CONTROL}' THEN k.revenue * k.revenue ELSE 0 END)",
}
assert set(COUNTER_SQL) == {*KPI_COUNTERS, *CHANNEL_COUNTERS, *REVENUE_SUMS}

KINDS = ("k.flow_key", "k.step", "k.channel", "k.variant", "k.kind")
DAILY_KEYS = ("day", "flow_key", "step", "channel", "variant", "kind")
DELTA_COUNTERS = (*KPI_COUNTERS, *CHANNEL_COUNTERS, *REVENUE_SUMS)

# What the users' messages change, gathered once per set of users (minus before, plus after) in scratch tables of
# this connection, then added to the rollups that every worker shares (a day's counters, a month's, a status's
# current count) once, table by table, each in key order: two workers recomputing at once then take the shared rows'
# locks in the same order, so one waits for the other instead of deadlocking (a first version moved the per-status
# rollups chunk by chunk, and two workers' chunks could lock a day's row and a month's row in opposite orders).
REASON_KEYS = ("day", "flow_key", "step", "channel", "status", "reason")
OPEN_KEYS = ("flow_key", "channel", "how")

DELTA_CREATE = [sa.text(sql) for sql in (
    "CREATE TEMPORARY TABLE IF NOT EXISTS kpi_delta ("
    + ", ".join([f"{k} VARCHAR(100) NOT NULL" for k in DAILY_KEYS]
                + [f"{c} {'DOUBLE PRECISION' if c in REVENUE_SUMS else 'BIGINT'} NOT NULL" for c in DELTA_COUNTERS])
    + ")",
    "CREATE TEMPORARY TABLE IF NOT EXISTS kpi_delta_reasons ("
    + ", ".join(f"{k} VARCHAR(100) NOT NULL" for k in REASON_KEYS) + ", n BIGINT NOT NULL)",
    "CREATE TEMPORARY TABLE IF NOT EXISTS kpi_delta_opens (flow_key VARCHAR(100) NOT NULL, "
    "channel VARCHAR(16) NOT NULL, how INTEGER NOT NULL, n BIGINT NOT NULL)",
)]
DELTA_CLEAR = [sa.text(f"DELETE FROM {t}") for t in ("kpi_delta", "kpi_delta_reasons", "kpi_delta_opens")]  # noqa: S608


def _delta_statements(sign: int) -> tuple[str, ...]:
    factor = "" if sign > 0 else "-1 * "
    return (
        f"INSERT INTO kpi_delta ({', '.join((*DAILY_KEYS, *DELTA_COUNTERS))}) "  # noqa: S608 (schema names)
        f"SELECT k.day, {', '.join(KINDS)}, {', '.join(factor + COUNTER_SQL[c] for c in DELTA_COUNTERS)} "
        "FROM kpi_messages k WHERE k.user_id IN :users GROUP BY 1, 2, 3, 4, 5, 6",
        f"INSERT INTO kpi_delta_reasons ({', '.join(REASON_KEYS)}, n) "  # noqa: S608 (schema names)
        f"SELECT {', '.join('k.' + k for k in REASON_KEYS)}, {factor}COUNT(*) "
        "FROM kpi_messages k WHERE k.user_id IN :users GROUP BY 1, 2, 3, 4, 5, 6",
        f"INSERT INTO kpi_delta_opens ({', '.join(OPEN_KEYS)}, n) "  # noqa: S608 (schema names)
        f"SELECT k.flow_key, k.channel, k.open_how, {factor}COUNT(*) "
        "FROM kpi_messages k WHERE k.user_id IN :users AND k.open_how IS NOT NULL GROUP BY 1, 2, 3",
    )


DELTA_BEFORE = _delta_statements(-1)
DELTA_AFTER = _delta_statements(1)


def _apply_delta(table: str, keys: Sequence[str], selected: Sequence[str], counters: Sequence[str], *,
                 source: str = "kpi_delta", where: str = "1 = 1") -> sa.TextClause:
    groups = ", ".join(str(i + 1) for i in range(len(keys)))
    changed = " OR ".join(f"SUM(d.{c}) <> 0" for c in counters)
    return sa.text(
        f"INSERT INTO {table} ({', '.join((*keys, *counters))}) "  # noqa: S608 (schema names)
        f"SELECT {', '.join((*selected, *[f'SUM(d.{c})' for c in counters]))} FROM {source} d WHERE {where} "
        f"GROUP BY {groups} HAVING {changed} ORDER BY {groups} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counters))


_REASON_DIMS = REASON_KEYS[1:]
APPLY_DELTA = [
    _apply_delta("kpi_daily", DAILY_KEYS, [f"d.{k}" for k in DAILY_KEYS], (*KPI_COUNTERS, *REVENUE_SUMS)),
    _apply_delta("kpi_monthly", ("month", *DAILY_KEYS[1:]),
                 ["substr(d.day, 1, 7)", *[f"d.{k}" for k in DAILY_KEYS[1:]]], (*KPI_COUNTERS, *REVENUE_SUMS)),
    _apply_delta("kpi_flow_days", ("day", "flow_key"), ("d.day", "d.flow_key"), DELTA_COUNTERS),
    _apply_delta("kpi_reasons", REASON_KEYS, [f"d.{k}" for k in REASON_KEYS], ("n",),
                 source="kpi_delta_reasons", where="d.reason <> ''"),
    _apply_delta("kpi_reasons_monthly", ("month", *_REASON_DIMS),
                 ["substr(d.day, 1, 7)", *[f"d.{k}" for k in _REASON_DIMS]], ("n",),
                 source="kpi_delta_reasons", where="d.reason <> ''"),
    _apply_delta("kpi_open_hours", OPEN_KEYS, [f"d.{k}" for k in OPEN_KEYS], ("n",), source="kpi_delta_opens"),
    _apply_delta("kpi_current", _REASON_DIMS, [f"d.{k}" for k in _REASON_DIMS], ("n",),
                 source="kpi_delta_reasons"),
]
"""In this order, each in key order (see above)."""
ROLLUP_TABLES = ["kpi_daily", "kpi_monthly", "kpi_flow_days", "kpi_reasons", "kpi_reasons_monthly", "kpi_open_hours",
                 "kpi_current"]


def users_param(dialect: str, users: Sequence[str]) -> object:
    """The value of ``:users`` for :func:`statements` of ``dialect``."""
    return list(users) if dialect == "postgresql" else orjson.dumps(list(users)).decode()


@dataclass(frozen=True)
class RollupStatements:
    """The statements over a set of users, for one dialect (``:users`` is :func:`users_param`)."""

    missing_buckets: sa.TextClause
    users_with_messages: sa.TextClause
    users_with_facts: sa.TextClause
    delta_before: tuple[sa.TextClause, ...]
    forget_facts: sa.TextClause
    forget_credits: sa.TextClause
    facts: sa.TextClause
    credit_purchases: sa.TextClause
    credit_unsubscribes: sa.TextClause
    attribute: sa.TextClause
    delta_after: tuple[sa.TextClause, ...]


@functools.cache
def statements(dialect: str) -> RollupStatements:
    """The statements of this module for ``dialect``: ``IN :users`` becomes one array parameter."""
    users = "= ANY(:users)" if dialect == "postgresql" else "IN (SELECT value FROM json_each(:users))"

    def text(sql: str) -> sa.TextClause:
        assert "IN :users" in sql
        return sa.text(sql.replace("IN :users", users))

    purchases, unsubscribes = credits_sql(dialect)
    return RollupStatements(
        missing_buckets=text(MISSING_BUCKETS), users_with_messages=text(USERS_WITH_MESSAGES),
        users_with_facts=text(USERS_WITH_FACTS),
        delta_before=tuple(text(s) for s in DELTA_BEFORE),
        forget_facts=text(FORGET_FACTS), forget_credits=text(FORGET_CREDITS), facts=text(FACTS),
        credit_purchases=text(purchases), credit_unsubscribes=text(unsubscribes), attribute=text(ATTRIBUTE),
        delta_after=tuple(text(s) for s in DELTA_AFTER))
