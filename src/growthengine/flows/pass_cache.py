"""What one pass of the flow stage reads for its runs, read once for all of them: the listings the messages are
about, the recent events personalization reads, the experiments' states. A pass is one batch of runs (a timer batch,
an enrolment); the cache is emptied at its flush, so nothing read here outlives the transaction it was read in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from growthengine.content.templates import TemplateRegistry
from growthengine.domain.events import Event
from growthengine.engagement.experiments import ExperimentBook, Options
from growthengine.flows.model import Flow, Send
from growthengine.flows.paths import resolve
from growthengine.optimize.experiments import Assignment, Experiment, assign
from growthengine.storage.run_store import Run
from growthengine.storage.unit_of_work import Tx

PERSONALIZATION_WINDOW_US = 90 * 86_400_000_000


def run_listing_id(run: Run) -> str:
    """The listing a run's messages are about: its entity, else the listing its trigger event was about."""
    return run.entity or str((run.context.get("trigger") or {}).get("listing_id") or "")


class PassCache:
    def __init__(self, templates: TemplateRegistry) -> None:
        self.templates = templates
        self.experiments = ExperimentBook()
        self._listings: dict[str, dict[str, Any] | None] = {}
        self._recent: dict[str, list[Event]] = {}
        self._recent_since: int | None = None
        self._states: dict[str, Experiment] = {}

    def prefetch(self, tx: Tx, runs: Sequence[tuple[Run, Flow]], now_us: int) -> None:
        """Read, in a few queries, what the runs' next steps will ask for (``now_us``: the earliest instant they
        are advanced as of)."""
        wanted = {run_listing_id(run) for run, _ in runs} - set(self._listings) - {""}
        if wanted:
            self._listings.update(tx.listings.get_many(sorted(wanted)))
        since = now_us - PERSONALIZATION_WINDOW_US
        personal = sorted({run.user_id for run, flow in runs if self._personalizes(flow, run)}
                          - set(self._recent if self._recent_since == since else ()))
        if personal:
            if self._recent_since != since:
                self._recent, self._recent_since = {}, since
            self._recent.update(tx.events.for_users(personal, since_us=since))

    def _personalizes(self, flow: Flow, run: Run) -> bool:
        """The run's current step is a send whose template picks a variant per user's recent behaviour."""
        step = resolve(flow.steps, run.cursor)
        body = step.body if step is not None else None
        return isinstance(body, Send) and not body.variants and body.template in self.templates and \
            len(self.templates.get(body.template).variants) > 1

    def listing(self, tx: Tx, listing_id: str) -> dict[str, Any] | None:
        if listing_id not in self._listings:
            self._listings[listing_id] = tx.listings.get(listing_id)
        return self._listings[listing_id]

    def recent_events(self, tx: Tx, user_id: str, now_us: int) -> list[Event]:
        """The user's events of the personalization window (90 days) before ``now_us``."""
        since = now_us - PERSONALIZATION_WINDOW_US
        prefetched = self._recent_since
        if prefetched is not None and prefetched <= since and user_id in self._recent:
            events = self._recent[user_id]
            return events if prefetched == since else [e for e in events if e.ts_us >= since]
        return tx.events.for_user(user_id, since_us=since)

    def assign(self, tx: Tx, key: str, variants: tuple[str, ...], mode: str, user_id: str,
               options: Options = None) -> Assignment:
        """The user's variant of an experiment (its state read once per pass)."""
        state = self._states.get(key)
        if state is None or list(state.variants) != list(variants):
            state = self._states[key] = self.experiments.load(tx, key, variants, mode, options)
        return assign(user_id, key, state)

    def clear(self) -> None:
        self._listings.clear()
        self._recent.clear()
        self._recent_since = None
        self._states.clear()
