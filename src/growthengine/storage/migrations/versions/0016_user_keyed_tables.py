"""Every hot table keyed by user id first (issue 10), so that the same schema can later be distributed by user id.

* Tables keyed by a generated row id (``events``, ``segment_transitions``, ``consent_changes``, ``flow_runs``,
  ``messages``, ``message_events``) get the primary key ``(user_id, id)``, ``timers`` ``(partition, id)``. On
  PostgreSQL the key is dropped and added again (``ALTER TABLE``); the id keeps its sequence. Where a row is looked
  up by its id alone (a run by its id, the message explorer by ``seq``, a fired timer by its id) a plain index on
  the id is added, on PostgreSQL only. On SQLite nothing changes for these tables: only an ``INTEGER PRIMARY KEY``
  (the rowid) generates ids, and SQLite is never distributed.
* Tables with a natural key get it with the user first, on both databases (SQLite rebuilds the table):
  ``segment_members (user_id, segment_key, entity)`` (``ix_segment_members_user`` is now the key's prefix and goes;
  ``ix_segment_members_segment`` serves the member lists), ``favorites (user_id, listing_id)``
  (``ix_favorites_listing`` serves a listing's favoriters), ``flow_activities (user_id, run_id, step)``
  (``ix_flow_activities_run`` finds a run's call), ``kpi_messages (user_id, message_id)``, ``coupons (user_id,
  code)`` (``ux_coupons_code`` keeps a code unique and finds it at redemption).

Every row is kept. The downgrade restores the keys and indexes of revision 0015.

Revision ID: 0016
Revises: 0015
"""

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# table -> (its key before, its key after); tables keyed by a generated id change on PostgreSQL only.
ROW_ID_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "events": (("id",), ("user_id", "id")),
    "segment_transitions": (("id",), ("user_id", "id")),
    "consent_changes": (("id",), ("user_id", "id")),
    "flow_runs": (("id",), ("user_id", "id")),
    "messages": (("seq",), ("user_id", "seq")),
    "message_events": (("id",), ("user_id", "id")),
    "timers": (("id",), ("partition", "id")),
}
# PostgreSQL only: lookups by the id alone, once the id no longer leads the key.
ID_INDEXES = (("ix_flow_runs_id", "flow_runs", "id"), ("ix_messages_seq", "messages", "seq"),
              ("ix_timers_id", "timers", "id"))

# table -> (key before, key after, indexes dropped, indexes created); both databases.
NATURAL_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...], dict[str, tuple[tuple[str, ...], bool]],
                              dict[str, tuple[tuple[str, ...], bool]]]] = {
    "segment_members": (("segment_key", "user_id", "entity"), ("user_id", "segment_key", "entity"),
                        {"ix_segment_members_user": (("user_id",), False)},
                        {"ix_segment_members_segment": (("segment_key", "user_id", "entity"), False)}),
    "favorites": (("listing_id", "user_id"), ("user_id", "listing_id"),
                  {"ix_favorites_user": (("user_id",), False)},
                  {"ix_favorites_listing": (("listing_id", "user_id"), False)}),
    "flow_activities": (("run_id", "step"), ("user_id", "run_id", "step"), {},
                        {"ix_flow_activities_run": (("run_id", "step"), False)}),
    "kpi_messages": (("message_id",), ("user_id", "message_id"), {}, {}),
    "coupons": (("code",), ("user_id", "code"), {}, {"ux_coupons_code": (("code",), True)}),
}


def _postgres() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def _set_key_pg(table: str, columns: Sequence[str]) -> None:
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({', '.join(columns)})")


def _rekey(table: str, key: Sequence[str], drop: dict[str, tuple[tuple[str, ...], bool]],
           create: dict[str, tuple[tuple[str, ...], bool]]) -> None:
    """Give ``table`` the primary key ``key``, dropping and creating indexes (SQLite: a rebuild keeping rows)."""
    if _postgres():
        for name in drop:
            op.drop_index(name, table_name=table)
        _set_key_pg(table, key)
        for name, (columns, unique) in create.items():
            op.create_index(name, table, list(columns), unique=unique)
        return
    # The rebuilt table takes the new key over the columns' reflected primary-key flags, which SQLAlchemy notes
    # with a warning ("setting the current primary key columns to ..."): that is the change wanted here.
    with warnings.catch_warnings(), op.batch_alter_table(table, recreate="always") as batch:
        warnings.filterwarnings("ignore", "Table .* specifies columns .* as primary_key=True", sa.exc.SAWarning)
        for name in drop:
            batch.drop_index(name)
        batch.create_primary_key(f"{table}_pkey", list(key))
        for name, (columns, unique) in create.items():
            batch.create_index(name, list(columns), unique=unique)


def upgrade() -> None:
    if _postgres():
        for table, (_, after) in ROW_ID_KEYS.items():
            _set_key_pg(table, after)
        for name, table, column in ID_INDEXES:
            op.create_index(name, table, [column])
    for table, (_, after, drop, create) in NATURAL_KEYS.items():
        _rekey(table, after, drop, create)


def downgrade() -> None:
    for table, (before, _, drop, create) in NATURAL_KEYS.items():
        _rekey(table, before, create, drop)
    if _postgres():
        for name, table, _column in ID_INDEXES:
            op.drop_index(name, table_name=table)
        for table, (before, _) in ROW_ID_KEYS.items():
            _set_key_pg(table, before)
