"""``GET /v1/users/{userId}/export`` (CONTRACT.md 10, Thailand's PDPA): everything held about one user, as JSON.

Read-only, in one transaction: the profile (traits with the time each was set, linked anonymous ids), every event
as received (with its context), segment memberships and every enter and exit with its reason, messages, the consent
history, flow runs, coupons, favourites and the per-user models (send times, channel scores).
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.api.routes_messages import message_json
from growthengine.clock import from_us
from growthengine.storage.flow_schema import favorites
from growthengine.storage.schema import events, identities, user_models
from growthengine.storage.unit_of_work import Tx
from growthengine.timefmt import format_instant

EXPORT_VERSION = 1
_ALL = 10_000_000  # no page limit: an export holds everything


def _at(us: int | None) -> str | None:
    return format_instant(from_us(us)) if us is not None else None


def export_user(tx: Tx, user_id: str) -> dict[str, Any] | None:
    """The user's data, or None when no (identified) user has this id."""
    profile = tx.profiles.get(user_id)
    if profile is None or profile.anonymous:
        return None
    conn = tx.conn
    linked = conn.execute(sa.select(identities.c.anonymous_id, identities.c.linked_us)
                          .where(identities.c.user_id == user_id).order_by(identities.c.linked_us)).all()
    return {
        "exportVersion": EXPORT_VERSION,
        "userId": user_id,
        "profile": {
            "traits": profile.traits,
            "traitsSetAt": {k: _at(v) for k, v in sorted(profile.trait_times.items())},
            "firstSeen": _at(profile.first_seen_us),
            "lastActive": _at(profile.last_active_us),
            "updatedAt": _at(profile.updated_us),
            "anonymousIds": [{"anonymousId": a, "linkedAt": _at(at)} for a, at in linked],
        },
        "events": _events(conn, user_id),
        "memberships": [
            {"segment": m.segment, "entity": m.entity or None, "since": _at(m.since_us), "reason": m.reason,
             "data": m.data}
            for m in tx.segments.members_of_user(user_id)
        ],
        "segmentHistory": [
            {"segment": t.segment, "entity": t.entity or None, "kind": t.kind, "at": _at(t.at_us),
             "eventTime": _at(t.event_us if t.event_us is not None else t.at_us), "origin": t.origin,
             "reason": t.reason, "data": t.data}
            for t in tx.segments.transitions(user_id=user_id, limit=_ALL)
        ],
        "messages": [message_json(m) for m in tx.messages.query(user_id=user_id, limit=_ALL)],
        "consentHistory": [
            {"channel": c.channel, "granted": c.granted, "at": _at(c.at_us), "source": c.source, "detail": c.detail}
            for c in tx.consent.for_user(user_id)
        ],
        "flowRuns": [
            {"flow": r.flow, "version": r.version, "entity": r.entity or None, "status": r.status,
             "enteredAt": _at(r.entered_us), "updatedAt": _at(r.updated_us), "exitReason": r.exit_reason,
             "context": r.context}
            for r in tx.runs.for_user(user_id)
        ],
        "coupons": [
            {"code": c.code, "type": c.type, "value": c.value, "createdAt": _at(c.created_us),
             "expiresAt": _at(c.expires_us), "redeemedAt": _at(c.redeemed_us), "orderId": c.order_id}
            for c in tx.coupons.for_user(user_id, limit=_ALL)
        ],
        "favorites": [
            {"listingId": listing, "addedAt": _at(at)}
            for listing, at in conn.execute(sa.select(favorites.c.listing_id, favorites.c.added_us)
                                            .where(favorites.c.user_id == user_id).order_by(favorites.c.added_us))
        ],
        "models": {
            kind: orjson.loads(model)
            for kind, model in conn.execute(sa.select(user_models.c.kind, user_models.c.model)
                                            .where(user_models.c.user_id == user_id).order_by(user_models.c.kind))
        },
    }


def _events(conn: sa.Connection, user_id: str) -> list[dict[str, Any]]:
    """Every stored event of the user, oldest first, as received: its properties (or traits) and its context."""
    rows = conn.execute(sa.select(events).where(events.c.user_id == user_id, events.c.type != "command")
                        .order_by(events.c.ts_us, events.c.id)).mappings()
    out = []
    for row in rows:
        event: dict[str, Any] = {"type": row["type"], "name": row["name"], "timestamp": _at(row["ts_us"]),
                                 "receivedAt": _at(row["received_us"]), "messageId": row["message_id"],
                                 "anonymousId": row["anonymous_id"], "properties": orjson.loads(row["payload"])}
        if row["extra"]:
            event["extra"] = orjson.loads(row["extra"])
        out.append(event)
    return out
