"""The segment engine's decision for one user: which memberships change now, which wait for a refresh, and the
timers that look again.

Each segment an event or a timer can change is decided by its compiled rule (``compiled.py``: no tree walk, no
reason worded); a segment whose membership changes (or whose timer fired) is evaluated again by the evaluator
(``evaluate.py``) for its reasons, then its enters and exits are gathered in the pass's batch with their event time
and origin. A real-time segment (or a fired refresh, or a rebuild) applies at once; an hourly or daily one books a
look at its next refresh instant.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from growthengine.segments.evaluate import Evaluator
from growthengine.segments.feeds import State
from growthengine.segments.model import Segment
from growthengine.segments.segment_pass import PassBatch, late_note, look_at
from growthengine.storage.segment_store import Membership, Origin, Transition

if TYPE_CHECKING:
    from growthengine.segments.engine import SegmentEngine


def reconcile(engine: SegmentEngine, batch: PassBatch, user_id: str, state: State, traits: dict[str, Any],
          now_us: int, keys: set[str], *, fired: set[str], force: bool = False, reason_prefix: str = "",
          causes: dict[str, int] | None = None, origin: Origin = "live",
          worded: set[str] | frozenset[str] = frozenset()) -> None:
    """Evaluate ``keys`` for one user; apply now (real-time, a fired refresh, a rebuild) or schedule.

    ``causes`` gives each segment the event time of what touched it (default: ``now_us``, a timer's due time).
    The segments in ``worded`` (those whose timers fired) are evaluated with their reasons at once; the others
    without, and again with their reasons only when their membership changes. A segment whose rule is one pattern
    is always decided by its compiled rule and its reasons worded from the facets found
    (``pattern_reasons.py``): no second walk of its rule, and no evaluator, when its timers fire.
    """
    if not keys:
        return
    tz = engine._tz(traits)
    memberships = state.setdefault("m", {})
    decide = engine.decide
    wordings = engine.wordings
    worded_evaluator: Evaluator | None = None
    for key in engine.order:
        if key not in keys:
            continue
        segment = engine.segments[key]
        word = wordings.get(key)
        facets: dict[str, dict[str, Any]] | None = None
        reason = ""
        if key in worded and word is None:
            worded_evaluator = worded_evaluator or Evaluator(traits, state, now_us)
            facets = worded_evaluator.segment(segment)
            reason, next_us = worded_evaluator.last_verdict.reason, worded_evaluator.last_verdict.next_us
            found = {entity: facet["data"] for entity, facet in facets.items()}
        else:  # compiled, no reason worded (reasons only for what changes, below)
            found, next_us = decide[key](state, traits, now_us)
        current: dict[str, Any] = memberships.get(key, {})
        apply_now = force or segment.refresh == "realtime" or key in fired
        changed = found.keys() != current.keys() or any(
            current[e][1] != data for e, data in found.items() if e in current
        )
        if apply_now:
            if changed:
                if word is not None:  # one pattern: worded from what the compiled rule found
                    reason, facets = word(found)
                elif facets is None:
                    worded_evaluator = worded_evaluator or Evaluator(traits, state, now_us)
                    facets = worded_evaluator.segment(segment)
                    reason = worded_evaluator.last_verdict.reason
                cause_us = min(now_us, (causes or {}).get(key, now_us))
                _apply(batch, segment, user_id, current, facets, now_us, reason_prefix + reason, cause_us, origin,
                       engine.entry_max_lag_us)
                if facets:
                    memberships[key] = {e: [current.get(e, [now_us])[0], f["data"]] for e, f in facets.items()}
                else:
                    memberships.pop(key, None)
            if next_us is not None:
                look_at(batch, state, segment, user_id, next_us, tz, now_us)
        else:
            if changed:  # applied at the next refresh instant, as found now (an import's changes stay its own)
                look_at(batch, state, segment, user_id, now_us, tz, now_us, origin)
            elif next_us is not None:  # a change that time alone brings later is live
                look_at(batch, state, segment, user_id, next_us, tz, now_us)

def _apply(batch: PassBatch, segment: Segment, user_id: str, current: dict[str, Any], facets: dict[str, dict[str, Any]],
       now_us: int, reason: str, cause_us: int, origin: Origin, entry_max_lag_us: int) -> None:
    key = segment.key
    pattern = segment.pattern
    found_by = "" if origin == "live" else f"{origin}: "  # a rebuild's or an import's transitions say so
    reason = found_by + reason
    for entity in current.keys() - facets.keys():
        batch.transitions.append(Transition(key, user_id, entity, "exit", now_us, reason, current[entity][1],
                                            cause_us, origin))
        batch.removed.append((key, user_id, entity))
    for entity, facet in facets.items():
        if entity not in current:
            event_us = cause_us
            opened = facet["data"].get("at_us")
            if pattern is not None and isinstance(opened, int):
                # An open entity became a member when its deadline passed, whatever brought the news.
                event_us = min(now_us, opened + pattern.within_us)
            entry = Transition(key, user_id, entity, "enter", now_us, found_by + facet["reason"], facet["data"],
                               event_us, origin)
            if origin == "live" and not entry.starts_flows(entry_max_lag_us):
                entry = replace(entry, reason=f"{entry.reason}; {late_note(entry.lag_us)}")
            batch.transitions.append(entry)
            batch.members.append(Membership(key, user_id, entity, now_us, facet["data"], facet["reason"]))
        elif current[entity][1] != facet["data"]:
            batch.members.append(
                Membership(key, user_id, entity, current[entity][0], facet["data"], facet["reason"])
            )
