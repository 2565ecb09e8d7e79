"""The one send decision, for a whole batch: send time, channel, expiry, address, consent, holdouts, quiet hours
and frequency caps, decided from plain values (:mod:`growthengine.gate.history`) with no database and no clock.

For each candidate, in this order:

1. **Send time** (a step with ``best_within``, not a held message coming due): the user's best instant within the
   span, from their send-time model on the planned channel (the population's pattern without one).
2. **Channel** (SPEC 4.C): a marketing message planned on a channel with a rule moves to the rule's channel when the
   user's scores say so and the user can receive it there (consent and an address); it keeps its channel otherwise.
3. A message booked for a later instant (its best time) is deferred to it (``send_time``, or ``channel_score`` when
   it was also switched), and decided again by the gate when that time comes.
4. **The gate**, on the channel the message goes on: expired (``expired``), no address (``no_address``);
   transactional messages pass the rest; no opt-in (``consent``); the global control group and the flow's holdout
   (``holdout``); quiet hours (``quiet_hours``: deferred to their end, or suppressed if it expires first); the
   frequency caps in the user's own local day or a rolling window (``frequency_cap``).
5. A real provider's channel needs a usable address (``fail``, ``no_address``).

Candidates are gated in priority order (the first of equal priorities first), so when two compete for the one slot
a cap allows, the more valuable one wins; a message let through counts against the caps of the ones after it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from growthengine.clock import from_us, to_us
from growthengine.domain.messages import Message
from growthengine.domain.traits import has_consent
from growthengine.gate.bucketing import in_holdout
from growthengine.gate.history import (
    ADDRESS_TRAIT,
    PROVIDER_ADDRESS_TRAIT,
    Candidate,
    CapKey,
    History,
    Policy,
    Sent,
)
from growthengine.gate.outcome import SEND, Decision
from growthengine.gate.rules import FrequencyCap, QuietHours
from growthengine.optimize.channel_scores import CHANNELS, RouteDecision, route
from growthengine.optimize.send_time import SendTimeChoice, SendTimeModel
from growthengine.segments.feeds import zone_for

BEST_TIME_DETAIL = "booked for the user's best time"


def quiet_until(quiet: QuietHours, now_us: int, tz: str) -> int | None:
    """The end of the quiet hours ``now_us`` falls in, in zone ``tz`` (None: not in quiet hours)."""
    local = from_us(now_us).astimezone(zone_for(tz))
    minutes = local.hour * 60 + local.minute
    start = quiet.start[0] * 60 + quiet.start[1]
    end = quiet.end[0] * 60 + quiet.end[1]
    inside = (start <= minutes or minutes < end) if start > end else (start <= minutes < end)
    if not inside:
        return None
    day = local.date() if minutes < end else local.date() + dt.timedelta(days=1)
    release = dt.datetime.combine(day, dt.time(*quiet.end), tzinfo=local.tzinfo)
    return to_us(release)


def window_start(cap: FrequencyCap, now_us: int, tz: str) -> int:
    """The first instant a cap counts from: local midnight ``days - 1`` days ago, or a rolling span back."""
    if cap.window == "rolling":
        return now_us - cap.days * 86_400_000_000 + 1
    local = from_us(now_us).astimezone(zone_for(tz))
    first_day = local.date() - dt.timedelta(days=cap.days - 1)
    return to_us(dt.datetime.combine(first_day, dt.time(0), tzinfo=local.tzinfo))


def decide_many(candidates: Sequence[Candidate], history: History, policy: Policy | None = None) -> list[Decision]:
    """One decision per candidate, in the candidates' order."""
    return _Batch(policy or Policy(), history).decide(candidates)


def available_channels(traits: dict[str, Any]) -> list[str]:
    """The channels a user can receive marketing on: an opt-in and, where the channel needs one, an address."""
    return [c for c in CHANNELS if has_consent(traits, c)
            and (c not in ADDRESS_TRAIT or traits.get(ADDRESS_TRAIT[c]))]


class _Batch:
    """One batch's decision; local times are worked out once per zone."""

    def __init__(self, policy: Policy, history: History) -> None:
        self.policy = policy
        self.rules = policy.rules
        self.history = history
        self.now_us = history.now_us
        self._quiet: dict[int, dict[str, int | None]] = {}  # per instant, per zone
        self._windows: dict[int, dict[tuple[int, str], int]] = {}  # per instant, per (cap, zone)
        self._recorded: dict[CapKey, list[Sent]] = {}

    def decide(self, candidates: Sequence[Candidate]) -> list[Decision]:
        decisions: list[Decision | None] = [None] * len(candidates)
        planned: list[tuple[int, int, str, RouteDecision | None, SendTimeChoice | None]] = []
        for i, candidate in enumerate(candidates):
            message = candidate.message
            now_us = self.now_us if candidate.at_us is None else candidate.at_us
            timed = self._send_time(candidate, now_us) if candidate.best_within_us and not candidate.release \
                else None
            routed = self._route(candidate) if not candidate.release else None
            switched = routed if routed is not None and routed.switched else None
            at_us = to_us(timed.send_at) if timed is not None else message.scheduled_us
            if at_us > now_us and not candidate.release:  # a held message coming due is decided now
                reason = "channel_score" if switched is not None else (
                    "send_time" if timed is not None else message.reason or "send_time")
                decisions[i] = Decision("defer", reason, at_us, BEST_TIME_DETAIL, route=switched, send_time=timed)
                continue
            planned.append((i, now_us, switched.channel if switched is not None else message.channel, switched,
                            timed))
        # By priority; candidates of different instants (timers ms apart) in time order first.
        timely = any(c.at_us is not None and c.at_us != self.now_us for c in candidates)
        for i, now_us, channel, switched, timed in sorted(
                planned, key=(lambda p: (p[1], -candidates[p[0]].message.priority)) if timely
                else (lambda p: -candidates[p[0]].message.priority)):
            decision = self._gate(candidates[i], channel, now_us)
            if decision.action == "send":
                message = candidates[i].message
                self._recorded.setdefault((message.user_id, channel, message.kind), []).append((now_us, message.id))
            if switched is not None or timed is not None:
                decision = dataclasses.replace(decision, route=switched, send_time=timed)
            decisions[i] = decision
        return [d if d is not None else SEND for d in decisions]

    # -- the optimizer's answers ------------------------------------------------------------------------------

    def _send_time(self, candidate: Candidate, now_us: int) -> SendTimeChoice | None:
        if not self.policy.send_time:
            return None
        message = candidate.message
        tz = self.policy.tz(candidate.traits)
        model = self.history.send_time_models.get((message.user_id, message.channel)) or SendTimeModel(tz)
        after = from_us(now_us)
        return model.best_time(after, dt.timedelta(microseconds=candidate.best_within_us), tz,
                               self.policy.send_time_quiet.get(message.channel),
                               population=self.history.send_time_population.get(message.channel),
                               explore_key=f"{message.user_id}:{message.channel}:{int(after.timestamp())}")

    def _route(self, candidate: Candidate) -> RouteDecision | None:
        message = candidate.message
        if not self.policy.routable(message):
            return None
        scores = self.history.channel_scores.get(message.user_id)
        if scores is None:  # no evidence about this user yet: the message keeps its channel
            return None
        return route(message.channel, message.kind, scores, self.policy.channel_rules,
                     available=available_channels(candidate.traits))

    # -- the gate ---------------------------------------------------------------------------------------------

    def _gate(self, candidate: Candidate, channel: str, now_us: int) -> Decision:
        decision = self._guardrails(candidate, channel, now_us)
        if decision.action == "send" and channel in self.policy.provider_channels:
            trait = PROVIDER_ADDRESS_TRAIT.get(channel)
            address = candidate.traits.get(trait) if trait else None
            if not isinstance(address, str) or not address.strip():
                return Decision("fail", "no_address")
        return decision

    def _guardrails(self, candidate: Candidate, channel: str, now_us: int) -> Decision:
        message, traits = candidate.message, candidate.traits
        if message.expires_us is not None and now_us >= message.expires_us:
            return Decision("suppress", "expired", detail="the message expired before it could go")
        address = ADDRESS_TRAIT.get(channel)
        if address and not traits.get(address):
            return Decision("suppress", "no_address", detail=f"the user has no {address}")
        if message.kind == "transactional":
            return SEND
        if not has_consent(traits, channel):
            return Decision("suppress", "consent", detail=f"no opt-in to marketing on {channel}")
        # Holdouts after consent: the control group holds only users who could have been sent to (fair uplift).
        if in_holdout("global", message.user_id, self.rules.global_control_pct):
            return Decision("suppress", "holdout", detail="the user is in the global control group")
        if in_holdout(message.flow, message.user_id, candidate.holdout_pct):
            return Decision("suppress", "holdout", detail=f"the user is in {message.flow}'s holdout")
        tz = self.policy.tz(traits)
        if not candidate.release and channel in self.rules.quiet_hours.channels:
            release_us = self._quiet_until(tz, now_us)
            if release_us is not None:
                if message.expires_us is not None and release_us >= message.expires_us:
                    return Decision("suppress", "quiet_hours", detail="quiet hours, and it expires before they end")
                return Decision("defer", "quiet_hours", release_us,
                                detail=f"quiet hours in {tz}; goes at {from_us(release_us).astimezone(zone_for(tz))}")
        for index, cap in enumerate(self.rules.caps):
            if cap.channel == channel and cap.kind == message.kind and \
                    self._count(message, channel, self._window(index, cap, tz, now_us)) >= cap.limit:
                return Decision("suppress", "frequency_cap", detail=cap.describe())
        return SEND

    def _count(self, message: Message, channel: str, since_us: int) -> int:
        """Sends of this user, channel and kind since ``since_us`` (not this message)."""
        key = (message.user_id, channel, message.kind)
        count = 0
        for entries in (self.history.sent.get(key, ()), self._recorded.get(key, ())):
            for sent_us, mid in entries:
                if sent_us >= since_us and mid != message.id:
                    count += 1
        return count

    def _quiet_until(self, tz: str, now_us: int) -> int | None:
        cache = self._quiet.get(now_us)
        if cache is None:
            cache = self._quiet[now_us] = {}
        if tz not in cache:
            cache[tz] = quiet_until(self.rules.quiet_hours, now_us, tz)
        return cache[tz]

    def _window(self, index: int, cap: FrequencyCap, tz: str, now_us: int) -> int:
        cache = self._windows.get(now_us)
        if cache is None:
            cache = self._windows[now_us] = {}
        found = cache.get((index, tz))
        if found is None:
            found = cache[(index, tz)] = window_start(cap, now_us, tz)
        return found
