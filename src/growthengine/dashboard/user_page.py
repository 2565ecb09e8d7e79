"""A user on the dashboard, found by id or email: the profile, a timeline of their events and messages, the
segments they are in and why, and the send time and channel scores the optimizer keeps for them (the same engine
reads as ``GET /v1/users/{id}``, ``/send-time`` and ``/channel-scores``)."""

from __future__ import annotations

from typing import Any

import orjson

from growthengine.clock import from_us
from growthengine.content.formatting import format_datetime
from growthengine.engine import Engine
from growthengine.timefmt import parse_instant

TIMELINE = 200
CHANNELS = ("push", "email", "sms", "in_app")


def search(engine: Engine, text: str) -> list[dict[str, Any]]:
    if not text:
        return []
    with engine.store.read() as tx:
        found = tx.profiles.search(text)
    return [{"user_id": p.user_id, "email": p.traits.get("email") or "", "name": p.traits.get("name") or "",
             "language": p.traits.get("language") or ""} for p in found]


def _when(at_us: int, lang: str, tz: str) -> str:
    return format_datetime(from_us(at_us), lang, tz)


def _short(value: Any, limit: int = 160) -> str:
    text = orjson.dumps(value, default=str).decode() if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def user(engine: Engine, user_id: str, lang: str) -> dict[str, Any] | None:
    view = engine.user_view(user_id)
    if view is None:
        return None
    tz = engine.settings.business_timezone
    with engine.store.read() as tx:
        events = tx.events.for_user(user_id)[-TIMELINE:]
        messages = tx.kpis.explore(user_id=user_id, limit=TIMELINE)
    timeline: list[tuple[int, dict[str, Any]]] = []
    for event in events:
        timeline.append((event.ts_us, {"kind": "event", "what": event.name, "type": event.type,
                                       "when": _when(event.ts_us, lang, tz), "detail": _short(event.properties)}))
    for row in messages:
        at_us = row["sent_us"] if row["sent_us"] is not None else row["scheduled_us"]
        timeline.append((at_us, {"kind": "message", "what": f"{row['flow_key']} · {row['step']}",
                                 "channel": row["channel"], "status": row["status"], "reason": row["reason"] or "",
                                 "when": _when(at_us, lang, tz), "id": row["id"],
                                 "detail": _short(row["subject"] or row["title"] or row["body"] or "")}))
    timeline.sort(key=lambda pair: pair[0], reverse=True)
    computed = view["computed"]
    reasons: dict[str, str] = computed.get("segment_reasons", {})
    segments = [{"key": key, "name": engine.segments.segments[key].name if key in engine.segments.segments else key,
                 "reason": reasons.get(key, ""), "entities": computed.get("segment_entities", {}).get(key, [])}
                for key in view["segments"]]
    send_times = []
    for channel in CHANNELS:
        choice = engine.send_time(user_id, channel)
        if choice is not None:
            at = parse_instant(choice["sendAt"], field="sendAt")
            send_times.append({"channel": channel, "at": format_datetime(at, lang, tz), "source": choice["source"],
                               "reason": choice["reason"]})
    scores = engine.channel_scores(user_id) or {}
    first_seen = parse_instant(computed["first_seen"], field="first_seen")
    last_active = computed.get("last_active")
    traits = [(name, value if isinstance(value, str) else _short(value, 400))
              for name, value in sorted(view["traits"].items())]
    return {"user_id": user_id, "traits": traits,
            "first_seen": format_datetime(first_seen, lang, tz),
            "last_active": format_datetime(parse_instant(last_active, field="last_active"), lang, tz)
            if last_active else "",
            "segments": segments, "timeline": [item for _at, item in timeline[:TIMELINE]],
            "send_times": send_times, "scores": sorted(scores.items(), key=lambda pair: -pair[1]), "timezone": tz}
