"""How every table is keyed, so that the schema could later be distributed by user id (DESIGN.md "Partitions").

Every hot table (per-user state written by the stages) has a primary key that starts with ``user_id`` (or with the
user's ``partition`` where it is read by partition), so a distributed database (Citus) could shard it by user id
and every per-user read and write would hit one shard. The tables that are not keyed so are listed below with the
reason (:data:`NOT_USER_KEYED`); a test fails when a table is neither keyed so nor listed.

**SQLite keeps its row ids.** Only an ``INTEGER PRIMARY KEY`` (the rowid) makes SQLite generate an id, and the
append-only tables depend on it (the event log's cursor is the id). So on SQLite the tables of
:data:`ROW_ID_TABLES` keep the id alone as their primary key and are read per user through their user-first index;
on PostgreSQL (the database that could be distributed) their key is ``(user_id, id)``. SQLite is one file on one
machine: it is never sharded.

**Lookups by a global id that stay** (each would be a query to every shard on a distributed database):

* ``events.message_id`` (unique): the dedupe of ingestion by ``messageId``. The contract makes a ``messageId``
  unique across users, so the check cannot be routed to one user's shard; it is one index probe per event, and
  a distributed deployment would keep it in a small table keyed by message id.
* ``messages.id`` (unique): a provider's webhook and an opened link name a message, not its user. Rare next to
  the writes, and the answer then routes to the message's user.
* ``outbox.message_id`` (unique) and the outbox itself: a delivery queue claimed by due time by whichever delivery
  worker is free, across users; rows live until their delivery is settled (see :data:`NOT_USER_KEYED`).
* ``timers.key`` (unique): a timer is set and moved by its name. The name always hashes to one partition, so a
  distributed deployment could route it; the due-time claim reads ``(partition, due_us)``.
* ``coupons.code`` (unique): a code is redeemed by whoever holds it (the order names the code).
* ``flow_runs.id``, ``messages.seq``, ``timers.id`` (indexes on PostgreSQL, :data:`ID_INDEXES`): a run found by
  the id a timer or a recorded call carries, the message explorer's newest-first pages, a fired timer deleted
  by its id. Each is one row (or one page) per lookup.
* ``favorites (listing_id, user_id)``: a price drop reaches every favoriter of a listing; the fan-out turns
  them into per-user commands (cross-user work travels through the log).
* ``segment_members (segment_key, user_id, entity)``: a segment's member list and size, read by the dashboard
  and the API, across users by nature.
"""

from __future__ import annotations

ROW_ID_TABLES: dict[str, str] = {
    "events": "id",
    "segment_transitions": "id",
    "consent_changes": "id",
    "flow_runs": "id",
    "messages": "seq",
    "message_events": "id",
    "timers": "id",
}
"""Tables whose primary key on SQLite is the generated id alone (the rowid); on PostgreSQL ``(user_id, id)``."""

ID_INDEXES: dict[str, tuple[str, str]] = {
    "ix_flow_runs_id": ("flow_runs", "id"),
    "ix_messages_seq": ("messages", "seq"),
    "ix_timers_id": ("timers", "id"),
}
"""PostgreSQL only (created by the migration, as the ``txid`` indexes are): lookups by the generated id alone. On
SQLite the id is the rowid, its own index."""

KEYED_BY_PARTITION: dict[str, str] = {
    "timers": "a timer names no user (some are a listing's or the engine's); it belongs to its user's partition "
              "(else the partition its key hashes to), and the partition's owner claims it by due time",
}
"""Hot tables keyed by the user's partition rather than the user."""

NOT_USER_KEYED: dict[str, str] = {
    "identities": "keyed by anonymous id: ingestion settles an anonymous id to its user before the user is known, "
                  "so the anonymous id is the only key it can look up (indexed by user id for merges and erasure)",
    "outbox": "a delivery queue claimed by due time by any free delivery worker, across users; it has no user "
              "column (its message, in the user-keyed ledger, has) and a row lives until its delivery settles",
    "listings": "the marketplace's catalog, one row per listing (seller_id is a listing's attribute)",
    "flow_versions": "config: one row per flow version",
    "config_versions": "config: one row per change",
    "broadcasts": "config: one row per broadcast",
    "engine_state": "engine settings and counters, not per user",
    "webhook_events": "the dedupe of providers' webhook deliveries, keyed by the provider's event id",
    "dashboard_sessions": "operators' dashboard sessions, not users'",
    "stage_cursors": "the pipeline's cursors, per stage and partition",
    "partition_leases": "the pipeline's leases, per partition",
    "pipeline_workers": "the pipeline's workers",
    "provider_calls": "provider call metrics, not per user",
    "kpi_daily": "rollup across users (day, flow, step, channel, variant, kind)",
    "kpi_monthly": "rollup across users",
    "kpi_flow_days": "rollup across users",
    "kpi_reasons": "rollup across users",
    "kpi_reasons_monthly": "rollup across users",
    "kpi_open_hours": "rollup across users",
    "kpi_current": "rollup across users",
    "kpi_calendar": "a calendar of 15-minute buckets",
    "segment_size_history": "segment sizes per day",
}
"""Tables whose primary key does not start with the user id, and why."""
