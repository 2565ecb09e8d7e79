"""The segment rule model: a tagged union of condition nodes (plain, immutable data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Refresh = Literal["realtime", "hourly", "daily"]
Comparison = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists"]
Measure = Literal["count", "sum", "distinct", "last"]


@dataclass(frozen=True)
class Compare:
    """``value <op> operand``."""

    op: Comparison
    operand: Any

    def describe(self) -> str:
        symbols = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}
        return f"{symbols.get(self.op, self.op)} {self.operand}"


@dataclass(frozen=True)
class PropertyFilter:
    prop: str
    compare: Compare


@dataclass(frozen=True)
class TraitCondition:
    """A condition on a profile trait (``{trait: is_seller, eq: true}``)."""

    trait: str
    compare: Compare


@dataclass(frozen=True)
class EventAggregate:
    """An aggregate over a user's events of one name, optionally filtered, windowed and grouped.

    ``measure`` is count, sum (of a property), distinct (values of a property) or last (time since the last one).
    ``within_us`` of None means lifetime. With ``per``, the aggregate is taken per value of that property and the
    condition holds when any group qualifies; the member keeps the qualifying group (the largest).
    """

    event: str
    measure: Measure
    compare: Compare
    of: str | None = None
    within_us: int | None = None
    where: tuple[PropertyFilter, ...] = ()
    per: str | None = None


@dataclass(frozen=True)
class Inactive:
    """No activity for more than ``more_than_us``."""

    more_than_us: int


@dataclass(frozen=True)
class ActiveDays:
    """The number of distinct local days with activity in the ``within_us`` before the last activity."""

    compare: Compare
    within_us: int


@dataclass(frozen=True)
class Pattern:
    """``first`` not followed by any of ``not_followed_by`` within ``within_us``, for the same entity (``same``).

    The user is a member once per open entity (a cart item); an entity leaves when a closing event comes, or
    ``leaves_after_us`` after the ``first`` event.
    """

    first: str
    not_followed_by: tuple[str, ...]
    within_us: int
    same: str
    leaves_after_us: int


@dataclass(frozen=True)
class InSegment:
    key: str


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = (
    All | AnyOf | Not | TraitCondition | EventAggregate | Inactive | ActiveDays | Pattern | InSegment
)


@dataclass(frozen=True)
class Segment:
    key: str
    name: str
    refresh: Refresh
    condition: Condition
    description: str = ""
    version: str = field(default="", compare=False)

    @property
    def pattern(self) -> Pattern | None:
        """The pattern of a per-entity segment (its top-level condition), if it is one."""
        return self.condition if isinstance(self.condition, Pattern) else None
