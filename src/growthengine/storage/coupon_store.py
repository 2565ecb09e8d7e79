"""Coupons issued by the embedded coupon engine (``content/coupons.py`` holds the rules)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from growthengine.storage.dialects import insert_for
from growthengine.storage.schema import coupons


@dataclass(frozen=True, slots=True)
class CouponRecord:
    """A stored coupon. ``value`` is the decimal as text; instants are epoch microseconds."""

    code: str
    issue_key: str | None
    user_id: str
    type: str
    value: str
    created_us: int
    expires_us: int
    redeemed_us: int | None = None
    order_id: str | None = None


class CouponStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def insert(self, record: CouponRecord) -> bool:
        """Store a new coupon; False (and nothing written) if its code or its issue key is taken."""
        stmt = insert_for(self._dialect, coupons).values(_row(record)).on_conflict_do_nothing()
        return self._conn.execute(stmt.returning(coupons.c.code)).first() is not None

    def get(self, code: str) -> CouponRecord | None:
        row = self._conn.execute(sa.select(coupons).where(coupons.c.code == code)).mappings().first()
        return _record(row) if row else None

    def by_issue_key(self, issue_key: str) -> CouponRecord | None:
        """The coupon issued for this idempotency key, if any."""
        row = self._conn.execute(sa.select(coupons).where(coupons.c.issue_key == issue_key)).mappings().first()
        return _record(row) if row else None

    def for_user(self, user_id: str, *, limit: int = 100) -> list[CouponRecord]:
        """A user's coupons, newest first."""
        query = (
            sa.select(coupons)
            .where(coupons.c.user_id == user_id)
            .order_by(coupons.c.created_us.desc(), coupons.c.code)
            .limit(limit)
        )
        return [_record(r) for r in self._conn.execute(query).mappings()]

    def mark_redeemed(self, code: str, *, order_id: str, at_us: int) -> bool:
        """Record the redemption unless the coupon is already redeemed (atomic: True for exactly one caller)."""
        stmt = (
            sa.update(coupons)
            .where(coupons.c.code == code, coupons.c.redeemed_us.is_(None))
            .values(redeemed_us=at_us, order_id=order_id)
            .returning(coupons.c.code)
        )
        return self._conn.execute(stmt).first() is not None


def _row(record: CouponRecord) -> dict[str, Any]:
    return {
        "code": record.code,
        "issue_key": record.issue_key,
        "user_id": record.user_id,
        "type": record.type,
        "value": record.value,
        "created_us": record.created_us,
        "expires_us": record.expires_us,
        "redeemed_us": record.redeemed_us,
        "order_id": record.order_id,
    }


def _record(row: Any) -> CouponRecord:
    return CouponRecord(
        code=row["code"],
        issue_key=row["issue_key"],
        user_id=row["user_id"],
        type=row["type"],
        value=row["value"],
        created_us=row["created_us"],
        expires_us=row["expires_us"],
        redeemed_us=row["redeemed_us"],
        order_id=row["order_id"],
    )
