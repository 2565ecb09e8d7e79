"""Profiles and the anonymous-id to user-id links."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.domain.profiles import Profile
from growthengine.storage.dialects import insert_for
from growthengine.storage.schema import identities, profiles


class ProfileStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def get(self, user_id: str) -> Profile | None:
        return self.get_many([user_id]).get(user_id)

    def get_many(self, user_ids: Sequence[str], *, for_update: bool = False) -> dict[str, Profile]:
        found: dict[str, Profile] = {}
        ids = list(dict.fromkeys(user_ids))
        for start in range(0, len(ids), 500):
            query = sa.select(profiles).where(profiles.c.user_id.in_(ids[start : start + 500]))
            if for_update and self._dialect == "postgresql":
                query = query.order_by(profiles.c.user_id).with_for_update()
            for row in self._conn.execute(query).mappings():
                found[row["user_id"]] = _to_profile(row)
        return found

    def save_many(self, items: Iterable[Profile]) -> None:
        rows = [_to_row(p) for p in items]
        if not rows:
            return
        stmt = insert_for(self._dialect, profiles)
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"],
            set_={
                c: stmt.excluded[c]
                for c in ("anonymous", "traits", "trait_times", "first_seen_us", "last_active_us", "updated_us")
            },
        )
        self._conn.execute(stmt, rows)

    def delete(self, user_id: str) -> None:
        self._conn.execute(sa.delete(profiles).where(profiles.c.user_id == user_id))

    def page(self, *, after: str | None, limit: int) -> list[Profile]:
        query = sa.select(profiles).order_by(profiles.c.user_id).limit(limit)
        if after is not None:
            query = query.where(profiles.c.user_id > after)
        return [_to_profile(r) for r in self._conn.execute(query).mappings()]

    def count(self) -> int:
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(profiles)).scalar_one())

    # Identity links -------------------------------------------------------------------------------

    def linked_users(self, anonymous_ids: Sequence[str]) -> dict[str, str]:
        """The user each of these anonymous ids is already linked to."""
        found: dict[str, str] = {}
        ids = list(dict.fromkeys(anonymous_ids))
        for start in range(0, len(ids), 500):
            rows = self._conn.execute(
                sa.select(identities.c.anonymous_id, identities.c.user_id).where(
                    identities.c.anonymous_id.in_(ids[start : start + 500])
                )
            )
            found.update({a: u for a, u in rows})
        return found

    def link(self, anonymous_id: str, user_id: str, at_us: int) -> None:
        stmt = insert_for(self._dialect, identities).on_conflict_do_nothing(index_elements=["anonymous_id"])
        self._conn.execute(stmt, {"anonymous_id": anonymous_id, "user_id": user_id, "linked_us": at_us})


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


def _to_row(profile: Profile) -> dict[str, Any]:
    return {
        "user_id": profile.user_id,
        "anonymous": profile.anonymous,
        "traits": orjson.dumps(profile.traits).decode(),
        "trait_times": orjson.dumps(profile.trait_times).decode(),
        "first_seen_us": profile.first_seen_us,
        "last_active_us": profile.last_active_us,
        "updated_us": profile.updated_us,
    }
