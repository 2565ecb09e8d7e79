"""A segment's preview (CONTRACT.md 11): a draft (or the saved rule) evaluated on stored history, saving nothing.

Each sampled user's state is folded afresh from their events, as the batch evaluator does
(:mod:`growthengine.segments.rebuild`), and the segments evaluated in dependency order. Exact when every user fits
in the sample and the time budget; otherwise on the users sampled (in user-id order), the size scaled to all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from growthengine.clock import Clock, system_seconds
from growthengine.segments.engine import SegmentEngine
from growthengine.segments.evaluate import Evaluator
from growthengine.segments.feeds import State, apply_event, prune
from growthengine.segments.model import Segment
from growthengine.storage.unit_of_work import Tx

SAMPLE_USERS = 5000
BUDGET_S = 1.5
SHOWN = 20
_PAGE = 500


@dataclass
class SegmentPreview:
    size: int
    exact: bool
    sampled: int
    users: int
    sample: list[dict[str, str]] = field(default_factory=list)


def preview_segment(segments: dict[str, Segment], key: str, tx: Tx, clock: Clock, now_us: int,
                    business_timezone: str, *, sample_users: int = SAMPLE_USERS, budget_s: float = BUDGET_S,
                    shown: int = SHOWN) -> SegmentPreview:
    engine = SegmentEngine(segments, clock, business_timezone)
    order = engine.order[:engine.order.index(key) + 1]  # the segment and those it refers to
    total = tx.profiles.count()
    deadline = system_seconds() + budget_s
    members = sampled = 0
    sample: list[dict[str, str]] = []
    after: str | None = None
    while sampled < sample_users and system_seconds() < deadline:
        page = tx.profiles.page(after=after, limit=min(_PAGE, sample_users - sampled))
        if not page:
            break
        after = page[-1].user_id
        for profile in page:
            reason = _evaluate(engine, order, key, profile.traits, tx, profile.user_id, now_us)
            sampled += 1
            if reason is not None:
                members += 1
                if len(sample) < shown:
                    sample.append({"userId": profile.user_id, "reason": reason})
    exact = sampled >= total
    size = members if exact or sampled == 0 else round(members * total / sampled)
    return SegmentPreview(size=size, exact=exact, sampled=sampled, users=total, sample=sample)


def _evaluate(engine: SegmentEngine, order: list[str], key: str, traits: dict[str, Any], tx: Tx, user_id: str,
              now_us: int) -> str | None:
    """The reason ``user_id`` is in ``key`` now, or ``None``."""
    tz = engine._tz(traits)
    state: State = {}
    for event in tx.events.for_user(user_id):
        if event.ts_us <= now_us:
            apply_event(state, event, engine.plan, tz)
    prune(state, engine.plan, engine.segments.values(), now_us)
    memberships = state.setdefault("m", {})
    for name in order:
        facets = Evaluator(traits, state, now_us).segment(engine.segments[name])
        if facets:
            memberships[name] = {e: [now_us, f.get("data")] for e, f in facets.items()}
            if name == key:
                first = next(iter(facets.values()))
                return str(first.get("reason") or "")
    return None
