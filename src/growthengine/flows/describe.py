"""A flow's trigger and steps in one line each (``growth flows``, ``GET /v1/flows``)."""

from __future__ import annotations

from growthengine.flows.model import (
    Branch,
    CouponAction,
    EventTrigger,
    Flow,
    RecommendationAction,
    Schedule,
    SegmentEntered,
    Send,
    Step,
    Wait,
)
from growthengine.segments.durations import format_duration_us


def describe_trigger(flow: Flow) -> str:
    trigger = flow.trigger
    if isinstance(trigger, SegmentEntered):
        return f"enters {trigger.segment}"
    if isinstance(trigger, Schedule):
        day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[trigger.weekday]
        audience = f" to {trigger.segment}" if trigger.segment else ""
        return f"every {day} {trigger.hour:02d}:{trigger.minute:02d}{audience}"
    assert isinstance(trigger, EventTrigger)
    text = f"event {trigger.event}"
    if trigger.audience:
        text += f" → everyone who {trigger.audience} the {trigger.per}"
    if trigger.unless_event:
        text += f", unless {trigger.unless_event} within the wait"
    return text


def describe_step(step: Step) -> str:
    body = step.body
    if isinstance(body, Send):
        return f"{body.kind} {body.channel}: {body.template}" + (" (high urgency)" if body.urgency == "high" else "")
    if isinstance(body, Wait):
        if body.for_us is not None:
            return f"wait {format_duration_us(body.for_us)}"
        if body.until_offset_us is not None:
            return f"wait until T+{format_duration_us(body.until_offset_us)}"
        assert body.until_local is not None
        return f"wait until {body.until_local[0]:02d}:{body.until_local[1]:02d} local"
    if isinstance(body, CouponAction):
        return f"coupon {body.value:g}{'%' if body.type == 'percent' else ' THB'} valid {body.expiry}"
    if isinstance(body, RecommendationAction):
        return f"recommend {body.limit} listings"
    assert isinstance(body, Branch)
    return "branch"
