"""An event as stored in the log and handed to the segment engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, frozen=True)
class Event:
    """One stored call. ``name`` is the event name for track calls, else the call type."""

    user_id: str
    name: str
    ts_us: int
    type: str = "track"
    properties: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    id: int | None = None
    origin: str | None = None  # "import" for history loaded by ``growth import``; None for live calls

    @property
    def is_activity(self) -> bool:
        """Every event counts as activity; identify, alias and group calls do not."""
        return self.type in ("track", "page", "screen")
