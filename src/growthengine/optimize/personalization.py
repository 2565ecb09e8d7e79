"""A user's context from behaviour (SPEC 4.B "User Context"): tags such as ``loves_cameras`` and
``price_sensitive``, each with the reason and the numbers behind it.

**Category affinity.** Interest per category from the user's events, recency-weighted (half-life): a view counts 1,
an add to cart 2, a favourite 3, a purchase 5. An event's category is its ``category`` property, else the category
of its listing (learned from the user's own views and listings, or from ``listing_categories`` the caller passes).
``loves_<category>`` when a category holds at least ``love_share`` of the user's interest and at least
``love_min`` weighted points (at most ``max_loves`` categories).

**Price sensitivity.** Three signals, each 0..1, averaged with weights over the signals that have data:

* coupon use: the share of purchases that used a coupon (a ``coupon``/``coupon_code`` property, or a
  ``coupon_redeemed`` event);
* price-drop engagement: opens and clicks of price-drop messages (a ``flow``/``template``/``campaign`` property
  containing ``price_drop``), three or more counting fully;
* cheap browsing: the median ratio of viewed prices to their category's median price; at or below
  ``cheap_ratio`` counts fully, at 1 (the median) not at all.

``price_sensitive`` when the weighted mean is at least ``price_threshold``. The tags are the ones the default
templates' variants choose on (``content/templates.yaml``: ``when: [loves_cameras, ...]``).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from growthengine.clock import to_us
from growthengine.domain.events import Event

INTEREST_WEIGHTS = {"item_viewed": 1.0, "add_to_cart": 2.0, "favorite_added": 3.0, "purchase": 5.0}
ENGAGEMENT_EVENTS = ("message_opened", "message_clicked")


@dataclass(frozen=True, slots=True)
class ContextConfig:
    half_life: dt.timedelta = dt.timedelta(days=60)
    love_share: float = 0.4
    love_min: float = 5.0
    max_loves: int = 2
    cheap_ratio: float = 0.6
    min_priced_views: int = 5
    price_threshold: float = 0.5
    signal_weights: tuple[float, float, float] = (0.4, 0.3, 0.3)  # coupon use, price-drop engagement, cheap views


@dataclass(frozen=True, slots=True)
class TagReason:
    tag: str
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserContext:
    """The tags and why each was given (``reasons``), plus the measurements that did not make a tag."""

    tags: list[str]
    reasons: list[TagReason]
    inputs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"tags": self.tags, "reasons": {r.tag: {"reason": r.reason, "inputs": r.inputs} for r in self.reasons},
                "inputs": self.inputs}


def build_context(events: Iterable[Event], *, now: dt.datetime, category_medians: Mapping[str, float] | None = None,
                  listing_categories: Mapping[str, str] | None = None,
                  config: ContextConfig | None = None) -> UserContext:
    """The user's context as of ``now`` from their events (any order; later ones than ``now`` are ignored)."""
    cfg = config or ContextConfig()
    now_us = to_us(now)
    half_life_us = cfg.half_life / dt.timedelta(microseconds=1)
    history = sorted((e for e in events if e.ts_us <= now_us), key=lambda e: e.ts_us)
    categories = dict(listing_categories or {})
    for e in history:  # the user's own views and listings tell which category a listing is in
        listing, category = e.properties.get("listing_id"), e.properties.get("category")
        if isinstance(listing, str) and isinstance(category, str) and category:
            categories.setdefault(listing, category)

    interest: dict[str, float] = defaultdict(float)
    purchases = coupon_purchases = 0
    price_drop_engagements = 0.0
    ratios: list[float] = []
    for e in history:
        weight = 0.5 ** ((now_us - e.ts_us) / half_life_us)
        points = INTEREST_WEIGHTS.get(e.name, 0.0)
        if points:
            for category in _categories_of(e, categories):
                interest[category] += points * weight
        if e.name == "purchase":
            purchases += 1
            coupon_purchases += int(bool(e.properties.get("coupon") or e.properties.get("coupon_code")))
        elif e.name == "coupon_redeemed":
            coupon_purchases += 1
        elif e.name in ENGAGEMENT_EVENTS and _is_price_drop(e.properties):
            price_drop_engagements += weight
        if e.name == "item_viewed" and category_medians:
            price, category = e.properties.get("price"), e.properties.get("category")
            median = category_medians.get(category) if isinstance(category, str) else None
            if isinstance(price, int | float) and price > 0 and median:
                ratios.append(float(price) / median)

    tags: list[str] = []
    reasons: list[TagReason] = []
    total = sum(interest.values())
    shares = {c: v / total for c, v in interest.items()} if total > 0 else {}
    inputs: dict[str, Any] = {"interest": {c: round(v, 3) for c, v in sorted(interest.items())},
                              "events": len(history)}
    ranked = sorted(shares, key=lambda c: (-shares[c], c))
    for category in ranked[:cfg.max_loves]:
        if shares[category] >= cfg.love_share and interest[category] >= cfg.love_min:
            tag = f"loves_{_slug(category)}"
            tags.append(tag)
            reasons.append(TagReason(tag, f"{shares[category]:.0%} of recent interest is in {category} "
                                     f"({interest[category]:.1f} weighted views, carts, favourites and purchases)",
                                     {"category": category, "share": round(shares[category], 3),
                                      "points": round(interest[category], 3)}))

    signals = _price_signals(cfg, purchases, coupon_purchases, price_drop_engagements, ratios)
    inputs["price_signals"] = signals
    weights = dict(zip(("coupon_use", "price_drop_engagement", "cheap_views"), cfg.signal_weights, strict=True))
    measured = {name: s for name, s in signals.items() if s["value"] is not None}
    if measured:
        weight_sum = sum(weights[n] for n in measured)
        sensitivity = sum(weights[n] * float(s["value"]) for n, s in measured.items()) / weight_sum
        inputs["price_sensitivity"] = round(sensitivity, 3)
        if sensitivity >= cfg.price_threshold:
            tags.append("price_sensitive")
            why = ", ".join(s["why"] for s in measured.values())
            reasons.append(TagReason("price_sensitive", f"price sensitivity {sensitivity:.2f} >= "
                                     f"{cfg.price_threshold:g}: {why}", {"sensitivity": round(sensitivity, 3),
                                                                         "signals": measured}))
    return UserContext(tags, reasons, inputs)


def _price_signals(cfg: ContextConfig, purchases: int, coupon_purchases: int, price_drop: float,
                   ratios: list[float]) -> dict[str, dict[str, Any]]:
    coupon_share = min(coupon_purchases / purchases, 1.0) if purchases else (1.0 if coupon_purchases else None)
    signals: dict[str, dict[str, Any]] = {
        "coupon_use": {"value": None if coupon_share is None else round(coupon_share, 3),
                       "why": f"coupons on {coupon_purchases} of {purchases} purchases"},
        "price_drop_engagement": {"value": round(min(price_drop / 3.0, 1.0), 3),
                                  "why": f"{price_drop:.1f} weighted price-drop opens/clicks"},
    }
    if len(ratios) >= cfg.min_priced_views:
        median = statistics.median(ratios)
        cheap = min(max((1.0 - median) / (1.0 - cfg.cheap_ratio), 0.0), 1.0)
        signals["cheap_views"] = {"value": round(cheap, 3),
                                  "why": f"viewed prices at {median:.0%} of their category's median"}
    else:
        signals["cheap_views"] = {"value": None, "why": f"{len(ratios)} priced views (needs {cfg.min_priced_views})"}
    return signals


def _categories_of(event: Event, categories: Mapping[str, str]) -> list[str]:
    category = event.properties.get("category")
    if isinstance(category, str) and category:
        return [category]
    listings = event.properties.get("listing_ids")
    if not isinstance(listings, list):
        listings = [event.properties.get("listing_id")]
    return [categories[lid] for lid in listings if isinstance(lid, str) and lid in categories]


def _is_price_drop(properties: Mapping[str, Any]) -> bool:
    return any("price_drop" in str(properties.get(k, "")) for k in ("flow", "template", "campaign"))


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.strip().lower()).strip("_") or "unknown"

