"""Ads audience sync (SPEC 5.3): ``churn_risk`` members who did not open their last email join the
"Winback Campaign" audience on the ads channel (Facebook Custom Audience, Google Customer Match); they leave it
when they leave the segment. Each add and remove is a message on the ``ads`` channel, so it goes through the send
gate (consent to ads), the send ledger (never twice) and the provider's batching and rate limits."""

from __future__ import annotations

from dataclasses import dataclass

from growthengine.channels.providers.audience import hash_email
from growthengine.clock import Clock, to_us
from growthengine.domain.messages import Message, message_id
from growthengine.flows.dispatch import Dispatcher, Outgoing
from growthengine.storage.segment_store import Transition
from growthengine.storage.unit_of_work import Tx

ENGAGED = ("opened", "clicked")
WENT_OUT = ("sent", "delivered", "opened", "clicked")


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
        if not any(t.segment == rule.segment for rule in self.rules for t in transitions):
            return  # (most timer instants: nothing of an audience's segment moved)
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

    def remove_erased(self, tx: Tx, user_id: str, token: str, email: str, now_us: int) -> int:
        """An erased user leaves every audience the ledger says they are in (their last add or remove that went
        out was an add): one removal each, addressed by the SHA-256 of their email (made here, before the email is
        deleted) and filed under the erasure's token, never the user id. Returns how many removals were queued."""
        out = Outgoing()
        for rule in self.rules:
            flow = f"audience:{rule.audience}"
            moves = [m for m in tx.messages.query(user_id=user_id, flow=flow, channel="ads", limit=10_000)
                     if m.status in WENT_OUT]
            if not moves or moves[-1].data.get("audience_action") != "add":
                continue
            message = Message(
                id=message_id("audience", rule.audience, token, now_us, "erase"), user_id=token, flow=flow,
                step="remove", channel="ads", kind="transactional", status="scheduled", scheduled_us=now_us,
                updated_us=now_us, body=f"remove {rule.audience}",
                data={"audience": rule.audience, "audience_action": "remove", "segment": rule.segment,
                      "erased": True})
            out.add(message, {"email": hash_email(email)}, 0.0)
        queued = len(out.candidates)
        self.dispatcher.flush(tx, out, now_us, learn=False)
        return queued
