"""A user's profile: traits (with the time each was last set) and activity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from growthengine.domain.traits import merge_traits

ANONYMOUS_PREFIX = "anon:"


def anonymous_key(anonymous_id: str) -> str:
    """The profile key under which an anonymous visitor's activity is kept until they identify."""
    return ANONYMOUS_PREFIX + anonymous_id


@dataclass(slots=True)
class Profile:
    user_id: str
    first_seen_us: int
    updated_us: int
    anonymous: bool = False
    traits: dict[str, Any] = field(default_factory=dict)
    trait_times: dict[str, int] = field(default_factory=dict)
    last_active_us: int | None = None

    def apply_traits(self, traits: dict[str, Any], at_us: int) -> bool:
        """Merge traits set at ``at_us``; a trait set later than that already stands (history back-fill).

        Returns whether anything changed.
        """
        fresh = {k: v for k, v in traits.items() if self.trait_times.get(k, -1) <= at_us}
        if not fresh:
            return False
        merged = merge_traits(self.traits, fresh)
        for key in fresh:
            self.trait_times[key] = at_us
        changed = merged != self.traits
        self.traits = merged
        return changed

    def touch(self, at_us: int) -> None:
        """Record activity at ``at_us`` (every event counts as activity)."""
        if self.last_active_us is None or at_us > self.last_active_us:
            self.last_active_us = at_us
        if at_us < self.first_seen_us:
            self.first_seen_us = at_us

    def absorb(self, other: Profile) -> None:
        """Fold an anonymous profile into this one: our traits win where both were set, activity combines."""
        for key, value in other.traits.items():
            if key not in self.traits:
                self.traits[key] = value
                self.trait_times[key] = other.trait_times.get(key, other.first_seen_us)
        self.first_seen_us = min(self.first_seen_us, other.first_seen_us)
        if other.last_active_us is not None:
            self.touch(other.last_active_us)
