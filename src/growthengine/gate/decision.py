"""The one send decision: every guardrail checked in one place, right before a send, with the rule that decided."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from growthengine.clock import from_us, to_us
from growthengine.domain.messages import Message
from growthengine.domain.traits import has_consent
from growthengine.gate.bucketing import in_holdout
from growthengine.gate.rules import FrequencyCap, GateRules
from growthengine.segments.feeds import zone_for
from growthengine.storage.unit_of_work import Tx

ADDRESS_TRAIT = {"push": "push_token", "email": "email", "sms": "phone"}


@dataclass(frozen=True)
class Decision:
    action: Literal["send", "defer", "suppress"]
    reason: str | None = None
    at_us: int | None = None
    detail: str = ""


SEND = Decision("send")


class SendGate:
    def __init__(self, rules: GateRules, business_timezone: str = "Asia/Bangkok") -> None:
        self.rules = rules
        self.business_timezone = business_timezone

    def tz(self, traits: dict[str, Any]) -> str:
        tz = traits.get("timezone")
        return tz if isinstance(tz, str) and tz else self.business_timezone

    def decide_many(self, tx: Tx, items: list[tuple[Message, dict[str, Any], float]], now_us: int, *,
                    release: bool = False) -> list[Decision]:
        """Decide for many messages at once (one query per frequency cap, whatever their number).

        Messages are decided in priority order, so when two compete for the one slot a cap allows, the more
        valuable one wins; a message let through counts against the caps of the ones decided after it.
        """
        sent = CapCounter(tx, self, [(m, t) for m, t, _ in items], now_us)
        order = sorted(range(len(items)), key=lambda i: -items[i][0].priority)
        decisions: list[Decision] = [SEND] * len(items)
        for i in order:
            message, traits, holdout = items[i]
            decision = self.decide(tx, message, traits, now_us, holdout_pct=holdout, release=release, counter=sent)
            if decision.action == "send":
                sent.record(message, now_us)
            decisions[i] = decision
        return decisions

    def decide(self, tx: Tx, message: Message, traits: dict[str, Any], now_us: int, *,
               holdout_pct: float = 0.0, release: bool = False, counter: CapCounter | None = None) -> Decision:
        """Send now, move to a later instant, or suppress; ``release`` is a held message coming due."""
        if message.expires_us is not None and now_us >= message.expires_us:
            return Decision("suppress", "expired", detail="the message expired before it could go")
        address = ADDRESS_TRAIT.get(message.channel)
        if address and not traits.get(address):
            return Decision("suppress", "no_address", detail=f"the user has no {address}")
        if message.kind == "transactional":
            return SEND
        if not has_consent(traits, message.channel):
            return Decision("suppress", "consent", detail=f"no opt-in to marketing on {message.channel}")
        # Holdouts after consent: the control group holds only users who could have been sent to (fair uplift).
        if in_holdout("global", message.user_id, self.rules.global_control_pct):
            return Decision("suppress", "holdout", detail="the user is in the global control group")
        if in_holdout(message.flow, message.user_id, holdout_pct):
            return Decision("suppress", "holdout", detail=f"the user is in {message.flow}'s holdout")
        tz = self.tz(traits)
        if not release and message.channel in self.rules.quiet_hours.channels:
            release_us = self._quiet_until(now_us, tz)
            if release_us is not None:
                if message.expires_us is not None and release_us >= message.expires_us:
                    return Decision("suppress", "quiet_hours", detail="quiet hours, and it expires before they end")
                return Decision("defer", "quiet_hours", release_us,
                                detail=f"quiet hours in {tz}; goes at {from_us(release_us).astimezone(zone_for(tz))}")
        for cap in self.rules.caps:
            if cap.channel == message.channel and cap.kind == message.kind:
                since = self.window_start(cap, now_us, tz)
                if counter is not None:
                    count = counter.count(cap, message, since)
                else:
                    count = len([m for m in tx.messages.sent_since(message.user_id, cap.channel, cap.kind, since)
                                 if m.id != message.id])
                if count >= cap.limit:
                    return Decision("suppress", "frequency_cap", detail=cap.describe())
        return SEND

    def _quiet_until(self, now_us: int, tz: str) -> int | None:
        quiet = self.rules.quiet_hours
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

    @staticmethod
    def window_start(cap: FrequencyCap, now_us: int, tz: str) -> int:
        if cap.window == "rolling":
            return now_us - cap.days * 86_400_000_000 + 1
        local = from_us(now_us).astimezone(zone_for(tz))
        first_day = local.date() - dt.timedelta(days=cap.days - 1)
        return to_us(dt.datetime.combine(first_day, dt.time(0), tzinfo=local.tzinfo))


class CapCounter:
    """What each user was already sent, per capped channel and kind: read once for a whole batch."""

    def __init__(self, tx: Tx, gate: SendGate, items: list[tuple[Message, dict[str, Any]]], now_us: int) -> None:
        self._sent: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
        capped_users = sorted({m.user_id for m, _ in items
                               if any(c.channel == m.channel and c.kind == m.kind for c in gate.rules.caps)})
        if capped_users:
            # Several workers may send to the same user at once (PostgreSQL): lock the users' profile rows so
            # that each counts what the others already sent. SQLite has one writer at a time anyway.
            tx.profiles.lock(capped_users)
        for cap in gate.rules.caps:
            capped = [(m, t) for m, t in items if m.channel == cap.channel and m.kind == cap.kind]
            if not capped:
                continue
            users = sorted({m.user_id for m, _ in capped})
            zones = {gate.tz(t) for _, t in capped}
            earliest = min(gate.window_start(cap, now_us, tz) for tz in zones)
            for user_id, sent_us, mid in tx.messages.sent_times(users, cap.channel, cap.kind, earliest):
                self._sent.setdefault((user_id, cap.channel, cap.kind), []).append((sent_us, mid))

    def count(self, cap: FrequencyCap, message: Message, since_us: int) -> int:
        entries = self._sent.get((message.user_id, cap.channel, cap.kind), [])
        return sum(1 for sent_us, mid in entries if sent_us >= since_us and mid != message.id)

    def record(self, message: Message, now_us: int) -> None:
        self._sent.setdefault((message.user_id, message.channel, message.kind), []).append((now_us, message.id))
