"""Reasons worded straight from a compiled rule's facets, for a segment whose whole rule is one pattern.

Reasons are worded only for a membership that changes, but a pattern segment's memberships change whenever its
timers fire (``cart_abandoners``: every fired timer is an entry), so at one instant of 1,000,000 due timers the
evaluator would walk the rule a second time per user only to word its sentences. A pattern's reasons depend on the
facets found and the rule's constants alone, so they are worded here from what the compiled rule found, in exactly
the evaluator's words (``tests/unit/test_segment_pattern_reasons.py`` checks they are the same). Any other rule is
worded by the evaluator (:func:`pattern_wording` gives ``None``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from growthengine.segments.durations import format_duration_us
from growthengine.segments.model import Pattern, Segment

Worded = tuple[str, dict[str, dict[str, Any]]]
"""The verdict's reason, and per facet ``{"data": ..., "reason": ...}`` (what ``Evaluator.segment`` gives)."""
Wording = Callable[[dict[str, dict[str, Any]]], Worded]


def pattern_wording(segment: Segment) -> Wording | None:
    """Words a pattern segment's facets (entity -> the data a member keeps) as the evaluator does; ``None`` for a
    segment whose rule is not one pattern."""
    node = segment.condition
    if not isinstance(node, Pattern):
        return None
    closers = "/".join(node.not_followed_by)
    within = format_duration_us(node.within_us)
    opening = f"{node.first} of {node.same} "
    tail = f" with no {closers} within {within}"
    held = f" open {node.first} without {closers} within {within}"
    none_left = f"no {node.first} left without {closers} within {within}"

    def word(found: dict[str, dict[str, Any]]) -> Worded:
        if not found:
            return none_left, {}
        return f"{len(found)}{held}", {entity: {"data": data, "reason": f"{opening}{entity}{tail}"}
                                       for entity, data in found.items()}

    return word
