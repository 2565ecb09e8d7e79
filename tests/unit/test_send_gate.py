"""The one send decision: each rule, its reason, and transactional messages passing every marketing guardrail."""

from __future__ import annotations

import datetime as dt

from growthengine.clock import ManualClock, to_us
from growthengine.domain.messages import Message
from growthengine.engine import Engine
from growthengine.gate.decision import SendGate
from growthengine.gate.rules import GateRules

BKK = dt.timezone(dt.timedelta(hours=7))


def _message(kind: str, channel: str = "push", at: dt.datetime | None = None, n: int = 0) -> Message:
    now_us = to_us(at or dt.datetime(2026, 1, 5, 23, 0, tzinfo=BKK))
    return Message(id=f"m{kind}{channel}{n}", user_id="u1", flow="f", step="s", channel=channel, kind=kind,
                   status="scheduled", scheduled_us=now_us, updated_us=now_us, body="x")


def test_transactional_passes_consent_quiet_hours_and_caps(engine: Engine, clock: ManualClock) -> None:
    gate = SendGate(GateRules())
    traits = {"push_token": "t", "consent": {"push": False}}
    late = dt.datetime(2026, 1, 5, 23, 0, tzinfo=BKK)
    with engine.store.transaction() as tx:
        decisions = gate.decide_many(tx, [(_message("transactional", n=i), traits, 0.0) for i in range(3)],
                                     to_us(late))
        assert [d.action for d in decisions] == ["send", "send", "send"]
        marketing = gate.decide_many(tx, [(_message("marketing"), traits, 0.0)], to_us(late))
        assert (marketing[0].action, marketing[0].reason) == ("suppress", "consent")


def test_quiet_hours_move_a_push_to_eight_and_caps_let_the_higher_priority_win(engine: Engine) -> None:
    gate = SendGate(GateRules())
    traits = {"push_token": "t", "consent": {"push": True}}
    late = dt.datetime(2026, 1, 5, 23, 0, tzinfo=BKK)
    with engine.store.transaction() as tx:
        [held] = gate.decide_many(tx, [(_message("marketing"), traits, 0.0)], to_us(late))
        assert (held.action, held.reason, held.at_us) == (
            "defer", "quiet_hours", to_us(dt.datetime(2026, 1, 6, 8, 0, tzinfo=BKK)))
        noon = dt.datetime(2026, 1, 6, 12, 0, tzinfo=BKK)
        low, high = _message("marketing", at=noon, n=1), _message("marketing", at=noon, n=2)
        low.priority, high.priority = 10, 90
        decisions = gate.decide_many(tx, [(low, traits, 0.0), (high, traits, 0.0)], to_us(noon))
        assert [(d.action, d.reason) for d in decisions] == [("suppress", "frequency_cap"), ("send", None)]
        email = gate.decide_many(tx, [(_message("marketing", "email", at=noon, n=i), {"email": "a@b.co",
                                  "consent": {"email": True}}, 0.0) for i in range(5)], to_us(noon))
        assert [d.action for d in email] == ["send"] * 3 + ["suppress"] * 2
