"""Profiles and the anonymous-id to user-id links."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.domain.partitions import partition_of
from growthengine.domain.profiles import Profile
from growthengine.storage.bulk_rows import write_rows
from growthengine.storage.dialects import insert_for
from growthengine.storage.driver_cursor import driver_rows
from growthengine.storage.event_log import in_list, list_params
from growthengine.storage.schema import identities, profiles

# As in the event log, the statements of the ingestion path are plain SQL for the driver (same on both databases
# but for the parameter marker and list matching), built from constant names and markers only (``noqa: S608``).
_COLUMNS = ("user_id", "anonymous", "traits", "trait_times", "first_seen_us", "last_active_us", "updated_us")
_TYPES = ("text", "boolean", "text", "text", "bigint", "bigint", "bigint")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM profiles WHERE "  # noqa: S608
_INSERT_HEAD = f"INSERT INTO profiles ({', '.join(_COLUMNS)})"
_UPSERT = f"ON CONFLICT (user_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:])}"
_CLAIM_SPACE = 7270031  # the first key of ``claim_keys``' advisory locks (two-key form: apart from the others)


class ProfileStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect
        self._upsert = _UPSERT

    def touch_many(self, activity: Sequence[tuple[str, bool, int, int | None]], updated_us: int) -> None:
        """Record activity without reading the profiles: ``(user_id, anonymous, earliest_us, last_active_us)``
        rows, each creating the profile (no traits, first seen at ``earliest_us``) or moving its first seen back
        and its last activity forward (``Profile.touch`` in SQL); ``last_active_us`` ``None``: no activity, only
        calls that may move first seen. Rows in user order (PostgreSQL takes its row locks in that order)."""
        if not activity:
            return
        on_conflict = (
            "ON CONFLICT (user_id) DO UPDATE SET "
            "first_seen_us = CASE WHEN excluded.first_seen_us < profiles.first_seen_us "
            "THEN excluded.first_seen_us ELSE profiles.first_seen_us END, "
            "last_active_us = CASE WHEN excluded.last_active_us IS NULL THEN profiles.last_active_us "
            "WHEN profiles.last_active_us IS NULL OR excluded.last_active_us > profiles.last_active_us "
            "THEN excluded.last_active_us ELSE profiles.last_active_us END, "
            "updated_us = excluded.updated_us"
        )
        self._write(on_conflict, [(u, bool(anon), "{}", "{}", first, last, updated_us)
                                  for u, anon, first, last in sorted(activity)])

    def _write(self, on_conflict: str, rows: list[tuple[Any, ...]]) -> None:
        """Profile rows in user order, the last of each user only (one statement may not update a row twice)."""
        write_rows(self._conn, self._dialect, _INSERT_HEAD, on_conflict, _TYPES, rows, key=lambda r: r[0])

    def get(self, user_id: str) -> Profile | None:
        return self.get_many([user_id]).get(user_id)

    def get_many(self, user_ids: Sequence[str], *, for_update: bool = False) -> dict[str, Profile]:
        found: dict[str, Profile] = {}
        ids = list(dict.fromkeys(user_ids))
        lock = " ORDER BY user_id FOR UPDATE" if for_update and self._dialect == "postgresql" else ""
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = _SELECT + in_list(self._dialect, "user_id", len(chunk)) + lock
            for row in driver_rows(self._conn, sql, list_params(self._dialect, chunk)):
                found[row[0]] = _from_tuple(row)
        return found

    def lock(self, user_ids: Sequence[str]) -> None:
        """Lock these users' profile rows for this transaction (PostgreSQL, in user order against deadlocks).

        SQLite has one writer at a time (``BEGIN IMMEDIATE``): nothing to do, and nothing is read or decoded.
        """
        if self._dialect != "postgresql":
            return
        ids = sorted(set(user_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = "SELECT user_id FROM profiles WHERE " + in_list(self._dialect, "user_id", len(chunk))  # noqa: S608
            self._conn.exec_driver_sql(sql + " ORDER BY user_id FOR UPDATE", list_params(self._dialect, chunk)).all()

    def claim_keys(self, keys: Sequence[str]) -> None:
        """Serialize this transaction with every other ingestion touching any of ``keys`` (profile keys and
        visitors' keys), until it ends (PostgreSQL; SQLite writers take turns anyway).

        A transaction-scoped advisory lock on each partition of the keys, all in one statement and in partition
        order. Unlike row locks they also cover profiles and identity links that do not exist yet, so two
        ingestions creating the same new users, or the same message id for one user, wait for each other instead
        of deadlocking; a lock per partition rather than per key keeps a batch of thousands of users within 64
        locks (PostgreSQL's shared lock table holds 64 per connection by default, ``max_locks_per_transaction``).
        """
        if self._dialect != "postgresql" or not keys:
            return
        partitions = sorted({partition_of(k) for k in keys})
        self._conn.exec_driver_sql(
            "SELECT count(pg_advisory_xact_lock(%s, p)) FROM (SELECT p FROM unnest(%b::int[]) AS p ORDER BY p) "
            "AS claimed", (_CLAIM_SPACE, partitions)).all()

    def save_many(self, items: Iterable[Profile]) -> None:
        rows = sorted((_to_tuple(p) for p in items), key=lambda r: r[0])  # in user order, as ``lock`` takes row locks
        if not rows:
            return
        self._write(self._upsert, rows)

    def delete(self, user_id: str) -> None:
        self._conn.execute(sa.delete(profiles).where(profiles.c.user_id == user_id))

    def page(self, *, after: str | None, limit: int) -> list[Profile]:
        query = sa.select(profiles).order_by(profiles.c.user_id).limit(limit)
        if after is not None:
            query = query.where(profiles.c.user_id > after)
        return [_to_profile(r) for r in self._conn.execute(query).mappings()]

    def count(self) -> int:
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(profiles)).scalar_one())

    def search(self, text: str, *, limit: int = 20) -> list[Profile]:
        """Known users whose id is ``text`` or starts with it (by the primary key), or whose ``email`` trait is
        ``text`` whatever its case (a scan of the traits, for the dashboard's search)."""
        start = self.get(text)
        found: dict[str, Profile] = {start.user_id: start} if start is not None else {}
        by_id = (sa.select(profiles).where(profiles.c.user_id.like(_escaped(text) + "%", escape="\\"))
                 .order_by(profiles.c.user_id).limit(limit))
        for row in self._conn.execute(by_id).mappings():
            found.setdefault(row["user_id"], _to_profile(row))
        if "@" in text:
            wanted = text.lower()
            pattern = "%" + _escaped(wanted) + "%"
            by_email = (sa.select(profiles).where(sa.func.lower(profiles.c.traits).like(pattern, escape="\\"))
                        .order_by(profiles.c.user_id).limit(limit * 5))
            for row in self._conn.execute(by_email).mappings():
                profile = _to_profile(row)
                email = profile.traits.get("email")
                if isinstance(email, str) and email.lower() == wanted:
                    found.setdefault(profile.user_id, profile)
        return [p for p in found.values() if not p.anonymous][:limit]

    # Identity links -------------------------------------------------------------------------------

    def linked_users(self, anonymous_ids: Sequence[str]) -> dict[str, str]:
        """The user each of these anonymous ids is already linked to."""
        found: dict[str, str] = {}
        ids = list(dict.fromkeys(anonymous_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._conn.exec_driver_sql(
                "SELECT anonymous_id, user_id FROM identities WHERE "  # noqa: S608
                + in_list(self._dialect, "anonymous_id", len(chunk)),
                list_params(self._dialect, chunk),
            )
            found.update({a: u for a, u in rows})
        return found

    def link(self, anonymous_id: str, user_id: str, at_us: int) -> None:
        stmt = insert_for(self._dialect, identities).on_conflict_do_nothing(index_elements=["anonymous_id"])
        self._conn.execute(stmt, {"anonymous_id": anonymous_id, "user_id": user_id, "linked_us": at_us})


def _escaped(text: str) -> str:
    """``text`` matched literally by LIKE (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _to_profile(row: Any) -> Profile:
    return Profile(
        user_id=row["user_id"],
        anonymous=bool(row["anonymous"]),
        traits=orjson.loads(row["traits"]),
        trait_times=orjson.loads(row["trait_times"]),
        first_seen_us=row["first_seen_us"],
        last_active_us=row["last_active_us"],
        updated_us=row["updated_us"],
    )


def _from_tuple(row: Any) -> Profile:
    """A profile from a row of ``_COLUMNS``."""
    return Profile(
        user_id=row[0],
        anonymous=bool(row[1]),
        traits=orjson.loads(row[2]),
        trait_times=orjson.loads(row[3]),
        first_seen_us=row[4],
        last_active_us=row[5],
        updated_us=row[6],
    )


def _to_tuple(profile: Profile) -> tuple[Any, ...]:
    """A profile as the values of ``_COLUMNS``."""
    return (
        profile.user_id,
        bool(profile.anonymous),
        orjson.dumps(profile.traits).decode(),
        orjson.dumps(profile.trait_times).decode(),
        profile.first_seen_us,
        profile.last_active_us,
        profile.updated_us,
    )
