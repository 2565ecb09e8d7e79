"""The engine as its entrypoints see it: one object that the API, the CLI and the simulator call."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from growthengine.clock import Clock, ManualClock, from_us
from growthengine.ingest.service import IngestionService, IngestResult
from growthengine.scheduler.runner import Scheduler
from growthengine.settings import Settings
from growthengine.storage.unit_of_work import Store
from growthengine.timefmt import format_instant

log = logging.getLogger(__name__)


class ClockNotManual(RuntimeError):
    """The engine runs on the real clock, which cannot be advanced."""


@dataclass
class Engine:
    settings: Settings
    clock: Clock
    store: Store
    scheduler: Scheduler
    ingestion: IngestionService

    def ingest(
        self, calls: list[Any], *, default_type: str | None = None, batch_sent_at: Any = None
    ) -> IngestResult:
        return self.ingestion.ingest(calls, default_type=default_type, batch_sent_at=batch_sent_at)

    def advance(self, to: dt.datetime) -> int:
        """Move the manual clock to ``to``, doing all the work that falls due on the way."""
        if not isinstance(self.clock, ManualClock):
            raise ClockNotManual("the engine runs on the real clock; start it with --clock manual")
        return self.scheduler.advance(to)

    def run_due(self) -> int:
        """Do the work that is due now (the background worker calls this on the real clock)."""
        return self.scheduler.run_due()

    def user_view(self, user_id: str) -> dict[str, Any] | None:
        """``GET /v1/users/{userId}``: traits, computed values and segment memberships."""
        with self.store.transaction() as tx:
            profile = tx.profiles.get(user_id)
            if profile is None or profile.anonymous:
                return None
            computed: dict[str, Any] = {
                "first_seen": format_instant(from_us(profile.first_seen_us)),
                "last_active": format_instant(from_us(profile.last_active_us))
                if profile.last_active_us is not None else None,
            }
            return {"userId": profile.user_id, "traits": profile.traits, "computed": computed, "segments": []}

    def close(self) -> None:
        self.store.close()
