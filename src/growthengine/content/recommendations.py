"""The recommendation contract (SPEC 5.1) and the built-in fallback.

``POST /recommendations/batch`` takes ``[user_id, ...]`` and answers ``{user_id: [product, ...]}``; the
"Weekly For You" email renders one product card per product. A :class:`RecommendationEngine` is the HTTP
client for an outside engine (``recommendation_client.py``) or :class:`PopularInFavouriteCategory`, which
needs nothing but the event log: the most popular listings (views, favorites, purchases in a recent window)
in each user's favourite category, topped up from their next categories and then from the whole catalog.
:class:`WithFallback` puts the two together: the outside engine, and the built-in one when it is down.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from growthengine.clock import Clock, to_us
from growthengine.storage.catalog_queries import CatalogQueries, Listing, UserTaste
from growthengine.storage.unit_of_work import Store, Tx

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 6


class RecommendationsUnavailable(Exception):
    """The recommendation engine could not answer (down, timing out, refusing, or answering nonsense)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Product:
    """One recommended listing, as a product card shows it. ``reason`` says why it was chosen."""

    listing_id: str
    title: str
    price: Decimal | None = None
    category: str | None = None
    image_url: str | None = None
    url: str | None = None
    reason: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Product | None:
        """A product from an outside engine's answer (``listing_id`` or ``id``, ``title`` or ``name``);
        None if it has no id."""
        if not isinstance(data, dict):
            return None
        raw_id = data.get("listing_id", data.get("listingId", data.get("id")))
        if raw_id is None or isinstance(raw_id, (dict, list, bool)) or not str(raw_id).strip():
            return None
        listing_id = str(raw_id).strip()
        title = data.get("title", data.get("name"))
        return cls(
            listing_id=listing_id,
            title=title.strip() if isinstance(title, str) and title.strip() else listing_id,
            price=_price(data.get("price")),
            category=_opt_text(data.get("category")),
            image_url=_opt_text(data.get("image_url", data.get("imageUrl"))),
            url=_opt_text(data.get("url")),
            reason=_opt_text(data.get("reason")),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "listing_id": self.listing_id,
            "title": self.title,
            "price": str(self.price) if self.price is not None else None,
            "category": self.category,
            "image_url": self.image_url,
            "url": self.url,
            "reason": self.reason,
        }


class RecommendationEngine(Protocol):
    """Recommends products to many users at once (SPEC 5.1)."""

    def recommend(self, user_ids: Sequence[str], *, limit: int = DEFAULT_LIMIT) -> dict[str, list[Product]]:
        """Up to ``limit`` products per user; every asked user is in the answer (maybe with an empty list).
        Raises :class:`RecommendationsUnavailable`."""
        ...


class PopularInFavouriteCategory:
    """The built-in engine: popular listings in each user's favourite category, from the event log.

    Popularity is weighted interest (view 1, favorite 3, purchase 5) within ``window`` before now; a user's
    favourite category is where their own weighted interest in that window is highest. Sold listings, the
    user's own listings and what they already bought are left out. Cost per call: three queries, whatever
    the number of users (the catalog is read once per call).
    """

    def __init__(self, store: Store, clock: Clock, *, window: dt.timedelta = dt.timedelta(days=30)) -> None:
        self._store = store
        self._clock = clock
        self._window = window
        self._ranking: tuple[int, dict[str, Listing], _Ranking] | None = None

    def recommend(self, user_ids: Sequence[str], *, limit: int = DEFAULT_LIMIT) -> dict[str, list[Product]]:
        if not user_ids or limit <= 0:
            return {u: [] for u in user_ids}
        with self._store.transaction() as tx:
            return self.recommend_in(tx, user_ids, limit=limit)

    def recommend_in(self, tx: Tx, user_ids: Sequence[str], *, limit: int = DEFAULT_LIMIT) -> dict[str, list[Product]]:
        """:meth:`recommend` inside a transaction the caller already holds (read-only)."""
        users = list(dict.fromkeys(user_ids))
        if not users or limit <= 0:
            return {u: [] for u in users}
        now = self._clock.now()
        now_us, since_us = to_us(now), to_us(now - self._window)
        queries = CatalogQueries(tx.conn, tx.dialect)
        cached = self._ranking
        if cached is None or cached[0] != now_us:
            # One catalog and popularity per instant: a weekly broadcast asks for every user at the same instant.
            catalog = queries.listings(until_us=now_us)
            cached = (now_us, catalog, _Ranking(catalog, queries.popularity(since_us=since_us, until_us=now_us)))
            self._ranking = cached
        _, catalog, ranking = cached
        tastes = queries.tastes(users, since_us=since_us, until_us=now_us, catalog=catalog)
        return {user: ranking.pick(tastes[user], limit) for user in users}


class WithFallback:
    """Ask ``primary``; when it is unavailable, answer from ``fallback`` (and log that it happened)."""

    def __init__(self, primary: RecommendationEngine, fallback: RecommendationEngine) -> None:
        self._primary = primary
        self._fallback = fallback

    def recommend(self, user_ids: Sequence[str], *, limit: int = DEFAULT_LIMIT) -> dict[str, list[Product]]:
        try:
            return self._primary.recommend(user_ids, limit=limit)
        except RecommendationsUnavailable as exc:
            log.warning("recommendation engine unavailable (%s); using the built-in fallback for %d users",
                        exc, len(user_ids))
            return self._fallback.recommend(user_ids, limit=limit)


class _Ranking:
    """Listings ranked by popularity, overall and per category (ties: newer first, then id)."""

    def __init__(self, catalog: Mapping[str, Listing], scores: Mapping[str, float]) -> None:
        self._scores = scores
        live = [item for item in catalog.values() if not item.sold]
        live.sort(key=lambda item: (-scores.get(item.listing_id, 0.0), -item.created_us, item.listing_id))
        self._overall = live
        self._by_category: dict[str, list[Listing]] = defaultdict(list)
        for item in live:
            if item.category is not None:
                self._by_category[item.category].append(item)

    def pick(self, taste: UserTaste, limit: int) -> list[Product]:
        chosen: list[Product] = []
        seen = set(taste.bought) | set(taste.own)
        sources = [(self._by_category.get(c, []), f"popular_in_category:{c}") for c in taste.favourite_categories()]
        sources.append((self._overall, "popular"))
        for listings, reason in sources:
            for item in listings:
                if len(chosen) >= limit:
                    return chosen
                if item.listing_id in seen:
                    continue
                seen.add(item.listing_id)
                chosen.append(_product(item, reason))
        return chosen


def _product(item: Listing, reason: str) -> Product:
    return Product(
        listing_id=item.listing_id,
        title=item.title,
        price=item.price,
        category=item.category,
        image_url=item.image_url,
        reason=reason,
    )


def _price(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _opt_text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
