"""The template context of a message: who it is for, what started the run, what earlier steps produced."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from growthengine.clock import from_us
from growthengine.storage.run_store import Run

PRODUCT_FIELDS = ("title", "image_url", "stock", "price", "listing_id", "new_price", "old_price", "category")


def message_context(run: Run, traits: dict[str, Any], listing: dict[str, Any] | None, now_us: int, *,
                    site_url: str, timezone: str) -> dict[str, Any]:
    trigger: dict[str, Any] = dict(run.context.get("trigger") or {})
    values: dict[str, Any] = {
        "user_id": run.user_id,
        "name": traits.get("name"),
        "email": traits.get("email"),
        "province": trigger.get("province") or traits.get("province"),
        "language": traits.get("language", "th"),
        "timezone": timezone,
        "now": from_us(now_us),
        "site_url": site_url,
        "guide_url": f"{site_url}/guide/photo-tips",
        "unsubscribe_url": f"{site_url}/unsubscribe",
        "flow": run.flow,
        "entity": run.entity,
        "trigger": trigger,
    }
    for key in PRODUCT_FIELDS:
        value = trigger.get(key)
        if value is None and listing is not None:
            value = listing.get(key)
        if value is not None:
            values[key] = value
    values["product"] = trigger.get("title") or (listing or {}).get("title") or run.entity or ""
    if "price" in values:
        values.setdefault("from_price", trigger.get("from_price", values["price"]))
    coupon = run.context.get("coupon")
    if isinstance(coupon, dict):
        values["coupon"] = {
            "code": coupon["code"], "type": coupon["type"], "value": Decimal(str(coupon["value"])),
            "expires_at": dt.datetime.fromisoformat(coupon["expires_at"]),
        }
    recommendations = run.context.get("recommendations")
    if isinstance(recommendations, list):
        values["recommendations"] = recommendations
        values["products"] = recommendations
    listings = run.context.get("listings")
    if isinstance(listings, list):
        values["listings"] = listings
    return values
