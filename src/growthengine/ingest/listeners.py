"""What the ingestion path tells the rest of the engine, inside the same transaction."""

from __future__ import annotations

from typing import Protocol

from growthengine.domain.events import Event
from growthengine.domain.profiles import Profile
from growthengine.storage.unit_of_work import Tx


class IngestListener(Protocol):
    """Reacts to freshly stored events (the segment engine is one)."""

    def on_events(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        """``events`` were appended (time order within each user); ``profiles`` are their users, up to date."""

    def on_merge(self, tx: Tx, anonymous_key: str, user_id: str) -> None:
        """An anonymous visitor's history now belongs to ``user_id``."""
