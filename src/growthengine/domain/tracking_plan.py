"""The default tracking plan (CONTRACT.md 4): event names and their property types.

Config validation uses it to catch a rule that sums a text property or compares a number with a word.
Events outside the plan are accepted everywhere; their properties are not type-checked.
"""

from __future__ import annotations

from typing import Literal

PropertyType = Literal["string", "number", "list", "boolean"]

TRACKING_PLAN: dict[str, dict[str, PropertyType]] = {
    "app_opened": {},
    "item_viewed": {"listing_id": "string", "category": "string", "price": "number", "province": "string"},
    "location_searched": {"province": "string"},
    "add_to_cart": {"listing_id": "string", "title": "string", "price": "number", "image_url": "string",
                    "stock": "number"},
    "remove_from_cart": {"listing_id": "string"},
    "purchase": {"order_id": "string", "amount": "number", "listing_ids": "list"},
    "item_sold": {"listing_id": "string", "amount": "number"},
    "favorite_added": {"listing_id": "string"},
    "favorite_removed": {"listing_id": "string"},
    "listing_created": {"listing_id": "string", "title": "string", "price": "number", "category": "string",
                        "image_url": "string"},
    "listing_price_changed": {"listing_id": "string", "old_price": "number", "new_price": "number"},
    "seller_registered": {},
    "message_opened": {"message_id": "string"},
    "message_clicked": {"message_id": "string"},
    "unsubscribed": {"channel": "string"},
}

KNOWN_TRAITS: dict[str, PropertyType] = {
    "email": "string", "phone": "string", "name": "string", "province": "string", "timezone": "string",
    "language": "string", "push_token": "string", "is_seller": "boolean",
}


def property_type(event: str, prop: str) -> PropertyType | None:
    """The declared type of ``event.prop``, or None when the plan does not say."""
    return TRACKING_PLAN.get(event, {}).get(prop)
