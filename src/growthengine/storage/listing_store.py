"""The marketplace facts flows need: who favorited which listing, and each listing's title, price and image."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from growthengine.storage.dialects import insert_for
from growthengine.storage.driver_cursor import driver_many
from growthengine.storage.event_log import marker
from growthengine.storage.flow_schema import favorites, listings

# Read and written for every listing event and every message about a listing: plain SQL for the driver, as in
# the event log (the same on both databases but for the parameter marker), from constant names (``noqa: S608``).
_COLUMNS = ("listing_id", "seller_id", "title", "price", "category", "image_url", "updated_us")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM listings WHERE listing_id = {{m}}"  # noqa: S608
_UPSERT = (
    f"INSERT INTO listings ({', '.join(_COLUMNS)}) VALUES ({', '.join(['{m}'] * len(_COLUMNS))}) "  # noqa: S608
    f"ON CONFLICT (listing_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:])}"
)


class ListingStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect
        mark = marker(dialect)
        self._select_sql = _SELECT.format(m=mark)
        self._upsert_sql = _UPSERT.format(m=mark)
        self._delete_sql = f"DELETE FROM favorites WHERE user_id = {mark} AND listing_id = {mark}"  # noqa: S608

    def add_favorites(self, rows: Sequence[tuple[str, str, int]]) -> None:
        if not rows:
            return
        stmt = insert_for(self._dialect, favorites).on_conflict_do_nothing(index_elements=["user_id", "listing_id"])
        self._conn.execute(stmt, [{"listing_id": lid, "user_id": uid, "added_us": at} for lid, uid, at in rows])

    def remove_favorites(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Delete these ``(listing_id, user_id)`` favorites."""
        if pairs:
            driver_many(self._conn, self._delete_sql, [(user, listing) for listing, user in pairs])

    def favoriters(self, listing_id: str, *, batch: int = 5000) -> Iterator[list[str]]:
        """Everyone whose favorites hold the listing, in chunks."""
        after = ""
        while True:
            rows = self._conn.execute(
                sa.select(favorites.c.user_id).where(favorites.c.listing_id == listing_id, favorites.c.user_id > after)
                .order_by(favorites.c.user_id).limit(batch)
            ).scalars().all()
            if not rows:
                return
            yield list(rows)
            after = rows[-1]

    def upsert_listings(self, changes: Sequence[tuple[str, int, dict[str, Any]]]) -> None:
        """Apply ``(listing_id, at_us, values)`` changes in order: each sets the values that are not None and
        keeps the others (a price change keeps the title); one read and one write for the lot."""
        if not changes:
            return
        stored = self.get_many([listing for listing, _, _ in changes])
        rows: dict[str, dict[str, Any]] = {}
        for listing_id, at_us, values in changes:
            row = rows.get(listing_id)
            if row is None:
                row = dict.fromkeys(_COLUMNS)
                row.update(stored.get(listing_id) or {})
                row["listing_id"] = listing_id
                rows[listing_id] = row
            row.update({k: v for k, v in values.items() if v is not None})
            row["updated_us"] = at_us
        driver_many(self._conn, self._upsert_sql, [tuple(row[c] for c in _COLUMNS) for row in rows.values()])

    def get(self, listing_id: str) -> dict[str, Any] | None:
        row = self._conn.exec_driver_sql(self._select_sql, (listing_id,)).first()
        return dict(zip(_COLUMNS, row, strict=True)) if row else None

    def get_many(self, listing_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Many listings at once (a listing not stored maps to None): one query per 500."""
        ids = list(dict.fromkeys(listing_ids))
        found: dict[str, dict[str, Any] | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            query = sa.select(*(listings.c[c] for c in _COLUMNS)).where(listings.c.listing_id.in_(chunk))
            for row in self._conn.execute(query):
                found[row[0]] = dict(zip(_COLUMNS, row, strict=True))
        return found
