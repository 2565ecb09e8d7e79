"""A small vocabulary for scenario tests that read like the specification: events, clock moves, assertions."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from growthengine.clock import ManualClock
from growthengine.engine import Engine

_ids = itertools.count()


class Story:
    def __init__(self, engine: Engine, clock: ManualClock) -> None:
        self.engine = engine
        self.clock = clock

    @property
    def now(self) -> dt.datetime:
        return self.clock.now()

    def identify(self, user: str, **traits: Any) -> None:
        self._ingest({"type": "identify", "userId": user, "traits": traits})

    def track(self, user: str, event: str, at: dt.datetime | None = None, **properties: Any) -> None:
        call: dict[str, Any] = {"type": "track", "userId": user, "event": event, "properties": properties,
                                "messageId": f"story-{next(_ids)}"}
        if at is not None:
            call["timestamp"] = at.isoformat()
        self._ingest(call)

    def _ingest(self, call: dict[str, Any]) -> None:
        result = self.engine.ingest([call])
        assert not result.rejected, result.rejected

    def advance(self, **delta: float) -> int:
        return self.engine.advance(self.now + dt.timedelta(**delta))

    def advance_to(self, instant: dt.datetime) -> int:
        return self.engine.advance(instant)

    def segments_of(self, user: str) -> list[str]:
        view = self.engine.user_view(user)
        return view["segments"] if view else []

    def in_segment(self, user: str, key: str) -> bool:
        return key in self.segments_of(user)

    def transitions(self, user: str, key: str | None = None) -> list[tuple[str, str, str]]:
        with self.engine.store.transaction() as tx:
            return [(t.segment, t.kind, t.entity) for t in tx.segments.transitions(user_id=user, segment=key)]


def messages(engine: Engine, user: str | None = None, **filters: Any) -> list[dict[str, Any]]:
    """Messages as the API shows them (oldest first)."""
    from growthengine.api.routes_messages import message_json

    return [message_json(m) for m in engine.messages(user_id=user, limit=100_000, **filters)]
