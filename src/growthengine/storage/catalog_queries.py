"""Read-only questions about the marketplace catalog, answered from the event log.

The catalog is what sellers told us: ``listing_created`` (listing_id, title, price, category, image_url), later
``listing_price_changed`` (the newest price wins) and ``item_sold`` (the listing is gone). Interest comes from
``item_viewed``, ``favorite_added`` and ``purchase``. The built-in recommendation fallback asks three questions
per batch of users, whatever the batch size: popularity (aggregated in SQL), the catalog, and the users' own
activity (through the ``(user_id, ts_us)`` index).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from growthengine.storage.schema import events

#: How much one event of each kind says about interest in a listing (and its category).
INTEREST_WEIGHTS: dict[str, float] = {"item_viewed": 1.0, "favorite_added": 3.0, "purchase": 5.0}
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Listing:
    """A listing as the catalog knows it now."""

    listing_id: str
    title: str
    price: Decimal | None
    category: str | None
    image_url: str | None
    seller_id: str
    created_us: int
    sold: bool = False


@dataclass(slots=True)
class UserTaste:
    """What one user's own activity says: interest per category, and listings not to recommend to them."""

    categories: dict[str, float] = field(default_factory=dict)
    bought: set[str] = field(default_factory=set)
    own: set[str] = field(default_factory=set)

    def favourite_categories(self) -> list[str]:
        """Categories by interest, strongest first (ties by name, so the answer is stable)."""
        return sorted(self.categories, key=lambda c: (-self.categories[c], c))


def _listing_key(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip()
    return text or None


def _money(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


class CatalogQueries:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def _prop(self, name: str) -> sa.ColumnElement[Any]:
        """``payload ->> name`` in this dialect."""
        if self._dialect == "postgresql":
            extracted: sa.ColumnElement[Any] = sa.cast(events.c.payload, JSONB)[name].astext
            return extracted
        return sa.func.json_extract(events.c.payload, f"$.{name}")

    def popularity(self, *, since_us: int, until_us: int) -> dict[str, float]:
        """Weighted interest per listing in ``[since_us, until_us]``: views and favorites counted in SQL,
        purchases (a list of listing ids per order) counted from their payloads."""
        listing = self._prop("listing_id").label("listing_id")
        counted = (
            sa.select(listing, events.c.name, sa.func.count().label("n"))
            .where(events.c.name.in_(("item_viewed", "favorite_added")))
            .where(events.c.ts_us.between(since_us, until_us))
            .group_by(listing, events.c.name)
        )
        scores: dict[str, float] = defaultdict(float)
        for listing_id, name, n in self._conn.execute(counted):
            key = _listing_key(listing_id)
            if key is not None:
                scores[key] += INTEREST_WEIGHTS[name] * int(n)
        purchases = (
            sa.select(events.c.payload)
            .where(events.c.name == "purchase")
            .where(events.c.ts_us.between(since_us, until_us))
        )
        for (payload,) in self._conn.execute(purchases):
            for key in _purchased_ids(orjson.loads(payload)):
                scores[key] += INTEREST_WEIGHTS["purchase"]
        return dict(scores)

    def listings(self, *, until_us: int) -> dict[str, Listing]:
        """Every listing created up to ``until_us``, with its newest price and whether it has sold."""
        query = (
            sa.select(events.c.user_id, events.c.name, events.c.ts_us, events.c.payload)
            .where(events.c.name.in_(("listing_created", "listing_price_changed", "item_sold")))
            .where(events.c.ts_us <= until_us)
            .order_by(events.c.ts_us, events.c.id)
        )
        created: dict[str, Listing] = {}
        prices: dict[str, Decimal] = {}
        sold: set[str] = set()
        for user_id, name, ts_us, payload in self._conn.execute(query):
            props = orjson.loads(payload)
            key = _listing_key(props.get("listing_id")) if isinstance(props, dict) else None
            if key is None:
                continue
            if name == "listing_created":
                created[key] = Listing(
                    listing_id=key,
                    title=_text(props.get("title")) or key,
                    price=_money(props.get("price")),
                    category=_text(props.get("category")),
                    image_url=_text(props.get("image_url")),
                    seller_id=user_id,
                    created_us=ts_us,
                )
                prices.pop(key, None)
            elif name == "listing_price_changed":
                price = _money(props.get("new_price"))
                if price is not None:
                    prices[key] = price
            else:
                sold.add(key)
        out: dict[str, Listing] = {}
        for key, listing in created.items():
            price = prices.get(key, listing.price)
            out[key] = replace(listing, price=price, sold=key in sold)
        return out

    def tastes(
        self, user_ids: Sequence[str], *, since_us: int, until_us: int, catalog: dict[str, Listing]
    ) -> dict[str, UserTaste]:
        """Each user's interest per category (views carry their category; favorites and purchases are
        looked up in ``catalog``), what they bought, and what they listed themselves."""
        tastes: dict[str, UserTaste] = {u: UserTaste() for u in user_ids}
        for start in range(0, len(user_ids), _CHUNK):
            chunk = list(user_ids[start : start + _CHUNK])
            query = (
                sa.select(events.c.user_id, events.c.name, events.c.payload)
                .where(events.c.user_id.in_(chunk))
                .where(events.c.ts_us <= until_us)
                .where(
                    sa.or_(
                        events.c.name == "listing_created",
                        sa.and_(events.c.name.in_(tuple(INTEREST_WEIGHTS)), events.c.ts_us >= since_us),
                    )
                )
            )
            for user_id, name, payload in self._conn.execute(query):
                props = orjson.loads(payload)
                if isinstance(props, dict):
                    _add_taste(tastes[user_id], name, props, catalog)
        return tastes


def _add_taste(taste: UserTaste, name: str, props: dict[str, Any], catalog: dict[str, Listing]) -> None:
    if name == "listing_created":
        key = _listing_key(props.get("listing_id"))
        if key is not None:
            taste.own.add(key)
        return
    if name == "purchase":
        keys = list(_purchased_ids(props))
        taste.bought.update(keys)
    else:
        key = _listing_key(props.get("listing_id"))
        keys = [key] if key is not None else []
    weight = INTEREST_WEIGHTS[name]
    for key in keys:
        category = _text(props.get("category")) if name == "item_viewed" else None
        if category is None and key in catalog:
            category = catalog[key].category
        if category is not None:
            taste.categories[category] = taste.categories.get(category, 0.0) + weight


def _purchased_ids(props: Any) -> Iterable[str]:
    if not isinstance(props, dict):
        return []
    ids = props.get("listing_ids")
    if not isinstance(ids, list):
        single = _listing_key(props.get("listing_id"))
        return [single] if single is not None else []
    return [k for k in (_listing_key(i) for i in ids) if k is not None]
