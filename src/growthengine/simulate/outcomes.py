"""What each flow earned in a simulation: conversion and GMV of the users it reached against its control group.

The control group is every user a flow would have messaged but held out (reason ``holdout``: the flow's own holdout
or the global control group, both decided after consent, so both groups could have been reached). Per user and
flow: the time of the user's first message decision in that flow (sent, or held out), and whether they bought within
the attribution window after it, and for how much. Users whose window runs past the end of the simulation are left
out, so both groups are measured over whole windows.

Conversion uplift: the difference of the two rates with Newcombe's hybrid score interval; GMV uplift: the difference
of the mean GMV per user with Welch's interval (95 %). A user counts once per flow, so the units are independent.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from growthengine.analytics.stats import mean_difference, newcombe_difference
from growthengine.domain.messages import Message

REACHED = {"sent", "delivered", "opened", "clicked"}


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class FlowUplift:
    flow: str
    treated: int  # users reached
    control: int  # users held out
    treated_converted: int
    control_converted: int
    treated_gmv: float
    control_gmv: float
    conversion: Interval | None  # None without a control group (or too small a one)
    gmv_per_user: Interval | None

    @property
    def treated_rate(self) -> float:
        return self.treated_converted / self.treated if self.treated else 0.0

    @property
    def control_rate(self) -> float:
        return self.control_converted / self.control if self.control else 0.0


def flow_uplift(messages: Iterable[Message], orders: Iterable[tuple[str, int, float]], *, window_us: int,
                end_us: int) -> list[FlowUplift]:
    """Per flow: the users it reached and the users it held out, what they bought within ``window_us`` after
    their first decision (only users whose whole window ended by ``end_us``)."""
    by_user: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for user, at_us, amount in orders:
        by_user[user].append((at_us, amount))
    times = {u: [t for t, _ in sorted(items)] for u, items in by_user.items()}
    amounts = {u: [a for _, a in sorted(items)] for u, items in by_user.items()}
    first: dict[tuple[str, str], tuple[int, bool]] = {}  # (flow, user) -> (decided at, reached)
    for m in messages:
        if m.status in REACHED:
            at, reached = m.sent_us if m.sent_us is not None else m.updated_us, True
        elif m.status == "suppressed" and m.reason == "holdout":
            at, reached = m.updated_us, False
        else:
            continue
        key = (m.flow, m.user_id)
        if key not in first or at < first[key][0]:
            first[key] = (at, reached)
    groups: dict[str, dict[bool, list[tuple[bool, float]]]] = defaultdict(lambda: {True: [], False: []})
    for (flow, user), (at, reached) in first.items():
        if at + window_us > end_us:
            continue
        ts = times.get(user, [])
        lo, hi = bisect.bisect_right(ts, at), bisect.bisect_right(ts, at + window_us)
        gmv = sum(amounts[user][lo:hi]) if hi > lo else 0.0
        groups[flow][reached].append((hi > lo, gmv))
    out = []
    for flow in sorted(groups):
        treated, control = groups[flow][True], groups[flow][False]
        t_conv, c_conv = sum(1 for c, _ in treated if c), sum(1 for c, _ in control if c)
        conversion: Interval | None = None
        per_user: Interval | None = None
        if treated and control:
            conversion = Interval(*newcombe_difference(t_conv, len(treated), c_conv, len(control)))
            if len(treated) >= 2 and len(control) >= 2:
                per_user = Interval(*mean_difference([g for _, g in treated], [g for _, g in control]))
        out.append(FlowUplift(flow, len(treated), len(control), t_conv, c_conv, sum(g for _, g in treated),
                              sum(g for _, g in control), conversion, per_user))
    return out
