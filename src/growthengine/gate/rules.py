"""The guardrail settings (CONTRACT.md 7 defaults), as data a marketer can change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``limit`` ``kind`` messages on ``channel`` per window: a local calendar day or a rolling span."""

    channel: str
    limit: int
    window: Literal["calendar_days", "rolling"]
    days: int
    kind: str = "marketing"

    def describe(self) -> str:
        span = "local calendar day" if self.window == "calendar_days" and self.days == 1 else f"{self.days} days"
        return f"at most {self.limit} {self.kind} {self.channel} per {span}"


@dataclass(frozen=True)
class QuietHours:
    """No ``channels`` marketing between ``start`` and ``end`` local time (hours, minutes)."""

    start: tuple[int, int] = (22, 0)
    end: tuple[int, int] = (8, 0)
    channels: tuple[str, ...] = ("push",)


@dataclass(frozen=True)
class GateRules:
    caps: tuple[FrequencyCap, ...] = (
        FrequencyCap("push", 1, "calendar_days", 1),
        FrequencyCap("email", 3, "rolling", 7),
    )
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    global_control_pct: float = 0.0
