"""Ads audience sync (SPEC 5.3): ``churn_risk`` members who did not open their last email join the
"Winback Campaign" audience on the ads channel (Facebook Custom Audience, Google Customer Match); they leave it
when they leave the segment. Each add and remove is a message on the ``ads`` channel, so it goes through the send
gate (consent to ads), the send ledger (never twice) and the provider's batching and rate limits."""

from __future__ import annotations

from dataclasses import dataclass

from growthengine.clock import Clock, to_us
from growthengine.domain.messages import Message, message_id
from growthengine.flows.dispatch import Dispatcher, Outgoing
from growthengine.storage.segment_store import Transition
from growthengine.storage.unit_of_work import Tx

ENGAGED = ("opened", "clicked")


@dataclass(frozen=True)
class AudienceRule:
    segment: str = "churn_risk"
    audience: str = "Winback Campaign"
    unless_opened_last: str = "email"


class AudienceSync:
    """A segment transition listener."""

    def __init__(self, dispatcher: Dispatcher, clock: Clock, rules: tuple[AudienceRule, ...] = (AudienceRule(),)):
        self.dispatcher = dispatcher
        self.clock = clock
        self.rules = rules

    def on_transitions(self, tx: Tx, transitions: list[Transition]) -> None:
        now_us = to_us(self.clock.now())
        out = Outgoing()
        for rule in self.rules:
            moves = [t for t in transitions if t.segment == rule.segment]
            if not moves:
                continue
            profiles = tx.profiles.get_many([t.user_id for t in moves])
            for t in moves:
                profile = profiles.get(t.user_id)
                if profile is None or not profile.traits.get("email"):
                    continue
                if t.kind == "enter" and self._opened_last(tx, t.user_id, rule.unless_opened_last):
                    continue
                action = "add" if t.kind == "enter" else "remove"
                message = Message(
                    id=message_id("audience", rule.audience, t.user_id, t.at_us, action), user_id=t.user_id,
                    flow=f"audience:{rule.audience}", step=action, channel="ads",
                    # Leaving an audience must never be blocked by a guardrail: it is not promotion.
                    kind="marketing" if action == "add" else "transactional",
                    status="scheduled", scheduled_us=now_us, updated_us=now_us,
                    body=f"{action} {rule.audience}",
                    data={"audience": rule.audience, "audience_action": action, "segment": rule.segment})
                out.add(message, profile.traits, 0.0)
        self.dispatcher.flush(tx, out, now_us)

    @staticmethod
    def _opened_last(tx: Tx, user_id: str, channel: str) -> bool:
        last = tx.messages.query(user_id=user_id, channel=channel, limit=10_000)
        sent = [m for m in last if m.sent_us is not None]
        return bool(sent) and sent[-1].status in ENGAGED
