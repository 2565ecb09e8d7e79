"""The flow model: triggers, steps and exits as plain immutable data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from growthengine.segments.model import PropertyFilter

Channel = Literal["push", "email", "sms", "in_app", "ads"]
CHANNELS: tuple[str, ...] = ("push", "email", "sms", "in_app", "ads")
Kind = Literal["marketing", "transactional"]
Reentry = Literal["never", "after_exit"]


@dataclass(frozen=True)
class SegmentEntered:
    segment: str


@dataclass(frozen=True)
class EventTrigger:
    """An event (with conditions, possibly on derived values) starts a run for its user, or for an audience."""

    event: str
    where: tuple[PropertyFilter, ...] = ()
    derive: tuple[tuple[str, str], ...] = ()  # (name, expression over the event's properties)
    per: str | None = None  # the entity property (listing_id): one live run per user and entity
    audience: str | None = None  # "favorited": every user whose favorites hold the entity
    unless_event: str | None = None  # "A and no B within T": B ends the run, the steps start at A + T
    unless_within_us: int | None = None


@dataclass(frozen=True)
class Schedule:
    """A broadcast to a segment's members (or everyone) at a weekly time (``monday 09:00``) in their timezone."""

    segment: str | None
    weekday: int  # 0 = Monday
    hour: int
    minute: int


Trigger = SegmentEntered | EventTrigger | Schedule


@dataclass(frozen=True)
class Wait:
    for_us: int | None = None
    until_offset_us: int | None = None  # T + offset, T being the trigger time
    until_local: tuple[int, int] | None = None  # the next hh:mm in the user's timezone


@dataclass(frozen=True)
class Send:
    channel: Channel
    template: str
    kind: Kind = "marketing"
    urgency: Literal["normal", "high"] = "normal"
    priority: int = 50
    expires_us: int | None = None
    best_within_us: int | None = None  # send at the user's best time within this span (send-time optimization)
    variants: tuple[str, ...] = ()  # an experiment between the template's variants (the first is the control)
    experiment_mode: str = "explore"  # explore (10 % explore, winner to the rest) or thompson
    experiment_options: tuple[tuple[str, float], ...] = ()  # explore_share, min_sends (optimize.experiments)


@dataclass(frozen=True)
class CouponAction:
    type: str
    value: float
    expiry: str
    on_failure: Literal["continue", "skip_next_send", "exit"] = "continue"


@dataclass(frozen=True)
class RecommendationAction:
    limit: int = 6
    on_failure: Literal["continue", "skip_next_send", "exit"] = "skip_next_send"


@dataclass(frozen=True)
class Branch:
    condition: BranchCondition
    then: tuple[Step, ...] = ()
    otherwise: tuple[Step, ...] = ()


@dataclass(frozen=True)
class BranchCondition:
    converted: bool | None = None  # a purchase since the run began
    in_segment: str | None = None
    event_since_entry: str | None = None


@dataclass(frozen=True)
class Step:
    name: str
    body: Wait | Send | CouponAction | RecommendationAction | Branch


@dataclass(frozen=True)
class ExitRule:
    event: str
    where: tuple[tuple[str, str, Any], ...] = ()  # (property, op, value or "{{ entity }}")


@dataclass(frozen=True)
class Flow:
    key: str
    name: str
    trigger: Trigger
    steps: tuple[Step, ...]
    exit_on: tuple[ExitRule, ...] = ()
    reentry: Reentry = "after_exit"
    enroll_existing: bool = False  # on segment entry: also enrol the members already in, once, when first published
    holdout_pct: float = 0.0
    description: str = ""
    enabled: bool = True
    version: str = field(default="", compare=False)
    source: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def iter_steps(steps: tuple[Step, ...]) -> list[Step]:
    """Every step, branches included, in document order."""
    out: list[Step] = []
    for step in steps:
        out.append(step)
        if isinstance(step.body, Branch):
            out += iter_steps(step.body.then) + iter_steps(step.body.otherwise)
    return out
