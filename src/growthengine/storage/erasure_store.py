"""The statements of a user's erasure (CONTRACT.md 10), one per table that holds user data.

Which table is erased how is stated here once (:data:`ERASED`, :data:`ANONYMISED`): a test fails when a table with
a user column is on neither list. Rows of the user are deleted, except those that KPIs count (the send ledger and
what counts it) and coupons (codes that may still be redeemed), whose user id becomes the erasure's one-way token
and which lose every text that could name the person.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.storage.activity_store import flow_activities
from growthengine.storage.analytics_schema import kpi_credits, kpi_messages
from growthengine.storage.flow_schema import favorites, flow_runs, listings, messages, outbox
from growthengine.storage.message_events import message_events
from growthengine.storage.schema import (
    consent_changes,
    coupons,
    events,
    identities,
    profiles,
    segment_members,
    segment_state,
    segment_transitions,
    timers,
    user_models,
)
from growthengine.storage.stage_log import COMMAND

ERASED: dict[str, str] = {
    "profiles": "the API request (at once)",
    "identities": "the API request (at once)",
    "events": "the API request (at once); the tombstone keeps only the token once every stage has applied it",
    "segment_state": "segments stage",
    "segment_members": "segments stage",
    "segment_transitions": "segments stage",
    "flow_runs": "flows stage",
    "flow_activities": "flows stage",
    "favorites": "flows stage",
    "consent_changes": "consent stage (the erasure itself is recorded under the token)",
    "user_models": "engagement stage",
}
"""Tables whose rows of the user are deleted, and who deletes them."""

ANONYMISED: dict[str, str] = {
    "messages": "flows stage: user id -> token; title, subject, body, html, image, coupon and data dropped",
    "outbox": "flows stage: the payload (address, content) of the user's messages dropped",
    "coupons": "flows stage: user id -> token (the code may still be redeemed)",
    "listings": "flows stage: seller_id cleared (the listing is the marketplace's, not the person's)",
    "kpi_messages": "analytics stage: user id -> token (the message keeps counting)",
    "message_events": "analytics stage: user id -> token (the message's history keeps counting)",
    "kpi_credits": "analytics stage: user id -> token (an attributed purchase stays attributed)",
}
"""Tables whose rows of the user stay (counted in KPIs), without anything that names the person."""

# What an anonymised message keeps in ``data``: what KPIs, experiments and the delivery path read; nothing the
# person wrote or that addresses them (the unsubscribe link names the user; the gate's words, errors, contexts).
KEPT_MESSAGE_DATA = frozenset({"template", "language", "urgency", "experiment", "experiment_converted", "provider",
                               "queued", "audience", "audience_action", "segment"})
ERASED_MARK = "erased"
"""Set (``True``) in the ``data`` of an anonymised message."""
_CHUNK = 500
ERASE_COMMAND = "erase"
"""A per-user command in the log: the tombstone of an erased user, applied by every stage."""


def kept_data(data: dict[str, Any]) -> dict[str, Any]:
    """A message's ``data`` without personal content: known keys and the times of its progress (``*_us``)."""
    kept = {k: v for k, v in data.items() if k in KEPT_MESSAGE_DATA or (k.endswith("_us") and isinstance(v, int))}
    kept[ERASED_MARK] = True
    return kept


class ErasureStore:
    """Deletes and anonymises one user's rows, inside one transaction."""

    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def _delete(self, table: sa.Table, column: str, values: Sequence[Any]) -> int:
        done = 0
        for start in range(0, len(values), _CHUNK):
            result = self._conn.execute(sa.delete(table).where(table.c[column].in_(list(values[start:start + _CHUNK]))))
            done += int(result.rowcount or 0)
        return done

    # The request ------------------------------------------------------------------------------------------

    def anonymous_ids(self, user_id: str) -> list[str]:
        """The anonymous ids linked to the user."""
        rows = self._conn.execute(sa.select(identities.c.anonymous_id).where(identities.c.user_id == user_id))
        return [r[0] for r in rows]

    def delete_identity(self, keys: Sequence[str], user_id: str) -> int:
        """Profiles (the user's and any anonymous ones), identity links and every stored event of these keys
        (per-user commands still pending for them included), but their tombstones.

        The tombstone is appended first: SQLite hands the largest row id out again once the rows that held it are
        deleted, and a log row whose id is behind the stages' cursors would never be read. For the same reason a
        tombstone is never deleted, only emptied (:meth:`retire_tombstones`)."""
        self._delete(profiles, "user_id", keys)
        self._conn.execute(sa.delete(identities).where(identities.c.user_id == user_id))
        is_tombstone = sa.and_(events.c.type == COMMAND, events.c.name == ERASE_COMMAND)
        result = self._conn.execute(sa.delete(events).where(events.c.user_id.in_(list(keys)), sa.not_(is_tombstone)))
        return int(result.rowcount or 0)

    def retire_tombstones(self, tombstones: Sequence[tuple[int, str, str]]) -> None:
        """Tombstones ``(row id, token, source)`` every stage has applied keep only the token and who asked."""
        if tombstones:
            self._conn.execute(
                sa.update(events).where(events.c.id == sa.bindparam("row_id"), events.c.type == COMMAND)
                .values(user_id=sa.bindparam("token"), payload=sa.bindparam("doc")),
                [{"row_id": row_id, "token": token, "doc": orjson.dumps({"source": source}).decode()}
                 for row_id, token, source in tombstones])

    # Stages -----------------------------------------------------------------------------------------------

    def delete_segment_data(self, keys: Sequence[str]) -> None:
        for table in (segment_state, segment_members, segment_transitions):
            self._delete(table, "user_id", keys)

    def cancel_timers(self, timer_keys: Sequence[str]) -> int:
        return self._delete(timers, "key", timer_keys)

    def delete_runs(self, user_id: str) -> list[int]:
        """Every run of the user (live or ended) and its recorded calls; returns the run ids."""
        ids = [int(r[0]) for r in self._conn.execute(sa.select(flow_runs.c.id).where(flow_runs.c.user_id == user_id))]
        self._delete(flow_activities, "run_id", ids)
        self._conn.execute(sa.delete(flow_activities).where(flow_activities.c.user_id == user_id))
        self._delete(flow_runs, "id", ids)
        return ids

    def pending_deliveries(self, message_ids: Sequence[str]) -> list[str]:
        """Which of these messages still wait in the outbox for a real provider."""
        found: list[str] = []
        for start in range(0, len(message_ids), _CHUNK):
            rows = self._conn.execute(sa.select(outbox.c.message_id).where(
                outbox.c.message_id.in_(list(message_ids[start:start + _CHUNK])), outbox.c.state == "pending"))
            found += [r[0] for r in rows]
        return found

    def anonymise_messages(self, user_id: str, token: str) -> list[str]:
        """The user's messages lose their content and their user id (the token takes its place); their outbox
        rows lose their payload, and any still pending is cancelled. Returns the message ids."""
        rows = self._conn.execute(sa.select(messages.c.id, messages.c.data).where(messages.c.user_id == user_id)).all()
        if not rows:
            return []
        stmt = sa.update(messages).where(messages.c.id == sa.bindparam("mid")).values(
            user_id=token, title=None, subject=None, body="", html=None, image_url=None, coupon=None,
            data=sa.bindparam("new_data"))
        self._conn.execute(stmt, [{"mid": mid, "new_data": orjson.dumps(kept_data(orjson.loads(data))).decode()}
                                  for mid, data in rows])
        ids = [r[0] for r in rows]
        erased = orjson.dumps({ERASED_MARK: True}).decode()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            self._conn.execute(sa.update(outbox).where(outbox.c.message_id.in_(chunk)).values(payload=erased))
            self._conn.execute(sa.update(outbox).where(outbox.c.message_id.in_(chunk), outbox.c.state == "pending")
                               .values(state="cancelled", next_us=None))
        return ids

    def anonymise_marketplace(self, user_id: str, token: str) -> None:
        """Coupons stay (under the token), favourites go, listings forget their seller."""
        self._conn.execute(sa.update(coupons).where(coupons.c.user_id == user_id).values(user_id=token))
        self._conn.execute(sa.delete(favorites).where(favorites.c.user_id == user_id))
        # No index on seller_id: a scan of the catalog, once per erasure.
        self._conn.execute(sa.update(listings).where(listings.c.seller_id == user_id).values(seller_id=None))

    def delete_consent(self, keys: Sequence[str]) -> None:
        self._delete(consent_changes, "user_id", keys)

    def delete_models(self, keys: Sequence[str]) -> None:
        self._delete(user_models, "user_id", keys)

    def anonymise_kpis(self, user_id: str, token: str) -> None:
        self._conn.execute(sa.update(kpi_messages).where(kpi_messages.c.user_id == user_id).values(user_id=token))
        self._conn.execute(sa.update(message_events).where(message_events.c.user_id == user_id)
                           .values(user_id=token))
        self._conn.execute(sa.update(kpi_credits).where(kpi_credits.c.user_id == user_id).values(user_id=token))
