"""The send gate's rules, one by one and at their edges, on a fake ledger (no database): expiry, address,
transactional, consent, holdouts, quiet hours, frequency caps, and how a batch shares the cap slots.

Every case is decided both ways the engine decides: one message (``decide``, reading the ledger) and a batch
(``decide_many``, reading the ledger once through ``CapCounter``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from growthengine.clock import to_us
from growthengine.domain.messages import Message
from growthengine.gate.bucketing import bucket, in_holdout
from growthengine.gate.decision import SEND, Decision, SendGate
from growthengine.gate.rules import FrequencyCap, GateRules, QuietHours

BKK = ZoneInfo("Asia/Bangkok")
NEW_YORK = ZoneInfo("America/New_York")
NOON = dt.datetime(2026, 1, 6, 12, 0, tzinfo=BKK)  # Tue 6 Jan 2026
DAY_US = 86_400_000_000
PUSH_USER = {"push_token": "tok", "consent": {"push": True, "email": True, "sms": True, "in_app": True}}
EVERY_ADDRESS = {**PUSH_USER, "email": "u@example.test", "phone": "+66812345678"}


@dataclass
class FakeLedger:
    sent: list[Message] = field(default_factory=list)

    def sent_since(self, user_id: str, channel: str, kind: str, since_us: int) -> list[Message]:
        return [m for m in self.sent if (m.user_id, m.channel, m.kind) == (user_id, channel, kind)
                and m.sent_us is not None and m.sent_us >= since_us]

    def sent_times(self, user_ids: Sequence[str], channel: str, kind: str,
                   since_us: int) -> list[tuple[str, int, str]]:
        return [(m.user_id, m.sent_us, m.id) for u in user_ids for m in self.sent_since(u, channel, kind, since_us)
                if m.sent_us is not None]


@dataclass
class FakeProfiles:
    locked: list[list[str]] = field(default_factory=list)

    def lock(self, user_ids: Sequence[str]) -> None:
        self.locked.append(list(user_ids))


@dataclass
class FakeTx:
    messages: FakeLedger = field(default_factory=FakeLedger)
    profiles: FakeProfiles = field(default_factory=FakeProfiles)

    def send(self, at: dt.datetime, channel: str = "push", kind: str = "marketing", user: str = "u1",
             mid: str | None = None) -> None:
        """Something already went out to ``user``."""
        message = make(channel, kind, at, user=user, mid=mid or f"old{len(self.messages.sent)}")
        message.status, message.sent_us = "sent", to_us(at)
        self.messages.sent.append(message)


def make(channel: str = "push", kind: str = "marketing", at: dt.datetime = NOON, *, user: str = "u1",
         mid: str = "m", flow: str = "f", priority: int = 50, expires: dt.datetime | None = None) -> Message:
    return Message(id=mid, user_id=user, flow=flow, step="s", channel=channel, kind=kind, status="scheduled",
                   scheduled_us=to_us(at), updated_us=to_us(at), body="x", priority=priority,
                   expires_us=to_us(expires) if expires else None)


def both_ways(gate: SendGate, tx: FakeTx, message: Message, traits: dict[str, Any], at: dt.datetime, *,
              holdout: float = 0.0, release: bool = False) -> Decision:
    """The decision for one message, which must be the same alone and in a batch."""
    alone = gate.decide(tx, message, traits, to_us(at), holdout_pct=holdout, release=release)  # type: ignore[arg-type]
    [batched] = gate.decide_many(tx, [(message, traits, holdout)], to_us(at), release=release)  # type: ignore[arg-type]
    assert alone == batched
    return alone


def decide(message: Message, traits: dict[str, Any], at: dt.datetime = NOON, *, rules: GateRules | None = None,
           tx: FakeTx | None = None, holdout: float = 0.0, release: bool = False) -> Decision:
    return both_ways(SendGate(rules or GateRules()), tx or FakeTx(), message, traits, at, holdout=holdout,
                     release=release)


# Expiry, address, transactional, consent --------------------------------------------------------------------------

def test_a_message_expires_at_its_expiry_instant() -> None:
    assert decide(make(expires=NOON), PUSH_USER) == Decision("suppress", "expired",
                                                             detail="the message expired before it could go")
    assert decide(make(expires=NOON + dt.timedelta(microseconds=1)), PUSH_USER) == SEND


@pytest.mark.parametrize(("channel", "trait"), [("push", "push_token"), ("email", "email"), ("sms", "phone")])
def test_no_address_no_send_even_transactional(channel: str, trait: str) -> None:
    traits = {k: v for k, v in EVERY_ADDRESS.items() if k != trait}
    for kind in ("marketing", "transactional"):
        assert decide(make(channel, kind), traits) == Decision("suppress", "no_address",
                                                               detail=f"the user has no {trait}")
        assert decide(make(channel, kind), {**traits, trait: ""}).reason == "no_address"
    assert decide(make(channel), EVERY_ADDRESS) == SEND


def test_in_app_needs_no_address() -> None:
    assert decide(make("in_app"), {"consent": {"in_app": True}}) == SEND


@pytest.mark.parametrize("consent", [None, {}, {"email": True}, {"push": False}, {"push": "yes"}, {"push": 1},
                                     ["push"]])
def test_marketing_needs_an_explicit_opt_in_on_its_channel(consent: object) -> None:
    traits: dict[str, Any] = {"push_token": "tok"} if consent is None else {"push_token": "tok", "consent": consent}
    assert decide(make(), traits) == Decision("suppress", "consent", detail="no opt-in to marketing on push")
    assert decide(make(), {"push_token": "tok", "consent": {"push": True}}) == SEND


def test_transactional_passes_consent_holdouts_quiet_hours_and_caps() -> None:
    tx = FakeTx()
    night = dt.datetime(2026, 1, 6, 23, 0, tzinfo=BKK)
    for n in range(3):
        tx.send(night - dt.timedelta(hours=n + 1), kind="transactional")
        tx.send(night - dt.timedelta(hours=n + 1))
    rules = GateRules(global_control_pct=100.0)
    traits = {"push_token": "tok", "consent": {"push": False}}
    assert decide(make(kind="transactional", at=night), traits, night, rules=rules, tx=tx, holdout=100) == SEND


# Holdouts ---------------------------------------------------------------------------------------------------------

def test_bucketing_is_posthogs_sha1_scaled_to_one() -> None:
    digest = hashlib.sha1(b"flow.u1.holdout").hexdigest()[:15]
    assert bucket("flow", "u1", ".holdout") == int(digest, 16) / 16**15
    assert bucket("flow", "u1") == int(hashlib.sha1(b"flow.u1").hexdigest()[:15], 16) / 16**15
    values = [bucket("k", f"u{n}") for n in range(2000)]
    assert all(0 <= v < 1 for v in values) and 0.45 < sum(values) / len(values) < 0.55
    assert sum(v < 0.1 for v in values) in range(150, 251)


def test_holdout_membership_is_strictly_below_the_share() -> None:
    share = bucket("global", "u3", ".holdout") * 100  # 3.53...
    assert not in_holdout("global", "u3", share)
    assert in_holdout("global", "u3", share + 1e-9)
    assert not in_holdout("global", "u3", 0.0)
    assert in_holdout("global", "u3", 100.0) and in_holdout("global", "u4", 100.0)
    assert in_holdout("global", "u562", 0.5), "a share under 1 % holds someone too (u562: 0.494 %)"


def test_the_global_control_group_and_a_flows_holdout() -> None:
    rules = GateRules(global_control_pct=5.0)
    assert decide(make(user="u3"), PUSH_USER, rules=rules) == Decision(
        "suppress", "holdout", detail="the user is in the global control group")  # u3: 3.53 % < 5 %
    assert decide(make(user="u9"), PUSH_USER, rules=rules) == SEND  # u9: 22.5 %
    flow = make(user="u3", flow="cart_abandonment")  # 2.45 % of cart_abandonment
    assert decide(flow, PUSH_USER, holdout=5.0) == Decision(
        "suppress", "holdout", detail="the user is in cart_abandonment's holdout")
    assert decide(make(user="u1", flow="cart_abandonment"), PUSH_USER, holdout=5.0) == SEND  # 15.8 %


def test_one_message_alone_has_no_holdout_and_is_not_a_release_unless_told() -> None:
    gate = SendGate(GateRules())
    night = local(6, 23)
    assert gate.decide(FakeTx(), make(user="u48"), PUSH_USER, to_us(NOON)) == SEND  # type: ignore[arg-type]
    assert gate.decide(FakeTx(), make(at=night), PUSH_USER, to_us(night)).reason == "quiet_hours"  # type: ignore[arg-type]
    assert gate.decide_many(FakeTx(), [(make(at=night), PUSH_USER, 0.0)],  # type: ignore[arg-type]
                            to_us(night))[0].reason == "quiet_hours"


def test_holdouts_hold_only_users_who_could_have_been_sent_to() -> None:
    no_consent = {"push_token": "tok", "consent": {"push": False}}
    rules = GateRules(global_control_pct=100.0)
    assert decide(make(user="u3"), no_consent, rules=rules, holdout=100).reason == "consent"


# Quiet hours ------------------------------------------------------------------------------------------------------

def local(day: int, hour: int, minute: int = 0, tz: ZoneInfo = BKK) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour, minute, tzinfo=tz)


@pytest.mark.parametrize(("at", "goes"), [
    (local(6, 21, 59), None), (local(6, 22, 0), local(7, 8)), (local(6, 23, 59), local(7, 8)),
    (local(7, 0, 0), local(7, 8)), (local(7, 7, 59), local(7, 8)), (local(7, 8, 0), None),
    (local(6, 22, 0, NEW_YORK), local(7, 8, 0, NEW_YORK)), (local(7, 8, 0, NEW_YORK), None),
], ids=["21:59", "22:00", "23:59", "00:00", "07:59", "08:00", "NY-22:00", "NY-08:00"])
def test_quiet_hours_from_22_to_8_in_the_users_zone(at: dt.datetime, goes: dt.datetime | None) -> None:
    assert isinstance(at.tzinfo, ZoneInfo)
    traits = {**PUSH_USER, "timezone": at.tzinfo.key}
    decision = decide(make(at=at), traits, at)
    if goes is None:
        assert decision == SEND
    else:
        assert decision == Decision("defer", "quiet_hours", to_us(goes),
                                    detail=f"quiet hours in {at.tzinfo.key}; goes at {goes}")


def test_quiet_hours_hold_only_their_channels_and_not_a_held_message_coming_due() -> None:
    night = local(6, 23)
    for channel in ("email", "in_app", "sms"):
        assert decide(make(channel, at=night), EVERY_ADDRESS, night) == SEND
    assert decide(make(at=night), PUSH_USER, night, release=True) == SEND
    sms_too = GateRules(quiet_hours=QuietHours(channels=("push", "sms")))
    assert decide(make("sms", at=night), EVERY_ADDRESS, night, rules=sms_too).reason == "quiet_hours"


def test_a_quiet_window_that_ends_when_it_starts_is_empty() -> None:
    rules = GateRules(quiet_hours=QuietHours(start=(22, 0), end=(22, 0)))
    for at in (local(6, 21, 59), local(6, 22, 0), local(6, 23, 0), local(7, 3, 0)):
        assert decide(make(at=at), PUSH_USER, at, rules=rules) == SEND


def test_a_push_that_would_expire_before_the_morning_is_dropped() -> None:
    night = local(6, 23)
    assert decide(make(at=night, expires=local(7, 8)), PUSH_USER, night) == Decision(
        "suppress", "quiet_hours", detail="quiet hours, and it expires before they end")
    assert decide(make(at=night, expires=local(7, 8, 1)), PUSH_USER, night).action == "defer"


@pytest.mark.parametrize(("window", "at", "goes"), [
    (((12, 0), (13, 30)), local(6, 11, 59), None),             # a window within one day
    (((12, 0), (13, 30)), local(6, 12, 0), local(6, 13, 30)),
    (((12, 0), (13, 30)), local(6, 13, 29), local(6, 13, 30)),
    (((12, 0), (13, 30)), local(6, 13, 30), None),
    (((22, 30), (7, 15)), local(6, 22, 29), None),              # over midnight, with minutes
    (((22, 30), (7, 15)), local(6, 22, 30), local(7, 7, 15)),
    (((22, 30), (7, 15)), local(7, 7, 14), local(7, 7, 15)),
    (((22, 30), (7, 15)), local(7, 7, 15), None),
])
def test_configured_quiet_windows(window: tuple[tuple[int, int], tuple[int, int]], at: dt.datetime,
                                  goes: dt.datetime | None) -> None:
    rules = GateRules(quiet_hours=QuietHours(start=window[0], end=window[1]))
    decision = decide(make(at=at), PUSH_USER, at, rules=rules)
    assert (decision.action, decision.at_us) == (("send", None) if goes is None else ("defer", to_us(goes)))


# Frequency caps ---------------------------------------------------------------------------------------------------

def test_one_marketing_push_per_local_calendar_day() -> None:
    tx = FakeTx()
    tx.send(local(5, 23, 59) + dt.timedelta(seconds=59, microseconds=999_999))  # yesterday, its last instant
    assert decide(make(), PUSH_USER, tx=tx) == SEND
    tx.send(local(6, 0, 0))  # today's first instant
    assert decide(make(), PUSH_USER, tx=tx) == Decision(
        "suppress", "frequency_cap", detail="at most 1 marketing push per local calendar day")


def test_the_calendar_day_is_the_users_own() -> None:
    """09:00 in New York on Tue 6 Jan is 21:00 in Bangkok; 23:30 in New York on Mon 5 Jan is Tue 11:30 in Bangkok."""
    ny = {**PUSH_USER, "timezone": "America/New_York"}
    at = local(6, 9, 0, NEW_YORK)
    earlier_that_day, day_before = FakeTx(), FakeTx()
    earlier_that_day.send(local(6, 0, 30, NEW_YORK))   # Tue 6 Jan 12:30 in Bangkok
    day_before.send(local(5, 23, 30, NEW_YORK))        # Tue 6 Jan 11:30 in Bangkok: the same Bangkok day
    assert decide(make(at=at), ny, at, tx=earlier_that_day).reason == "frequency_cap"
    assert decide(make(at=at), ny, at, tx=day_before) == SEND


def test_three_marketing_emails_per_rolling_seven_days() -> None:
    email = {"email": "u@example.test", "consent": {"email": True}}
    tx = FakeTx()
    tx.send(NOON - dt.timedelta(days=7), "email")                              # just out of the window
    tx.send(NOON - dt.timedelta(days=7) + dt.timedelta(microseconds=1), "email")  # just in
    tx.send(NOON - dt.timedelta(days=1), "email")
    assert decide(make("email"), email, tx=tx) == SEND  # two in the window
    tx.send(NOON - dt.timedelta(hours=1), "email")
    assert decide(make("email"), email, tx=tx) == Decision(
        "suppress", "frequency_cap", detail="at most 3 marketing email per 7 days")


def test_caps_count_only_their_channel_and_kind_and_never_the_message_itself() -> None:
    tx = FakeTx()
    tx.send(NOON - dt.timedelta(hours=1), kind="transactional")
    tx.send(NOON - dt.timedelta(hours=1), channel="email")
    tx.send(NOON - dt.timedelta(hours=1), channel="in_app")
    tx.send(NOON - dt.timedelta(hours=1), user="someone-else")
    assert decide(make(), EVERY_ADDRESS, tx=tx) == SEND
    tx.send(NOON - dt.timedelta(hours=1), mid="m")  # the message deciding now, already in the ledger as sent
    assert decide(make(mid="m"), EVERY_ADDRESS, tx=tx) == SEND
    # A marketing push went today: another channel's marketing is not held by the push cap.
    for channel in ("email", "in_app", "sms"):
        assert decide(make(channel, mid="other"), EVERY_ADDRESS, tx=tx) == SEND
    assert decide(make(mid="other"), EVERY_ADDRESS, tx=tx).reason == "frequency_cap"


def test_a_cap_over_several_calendar_days() -> None:
    rules = GateRules(caps=(FrequencyCap("push", 2, "calendar_days", 2),))
    assert rules.caps[0].describe() == "at most 2 marketing push per 2 days"
    tx = FakeTx()
    tx.send(local(4, 23, 59))  # two days ago: outside
    tx.send(local(5, 0, 0))    # yesterday's first instant: inside
    assert decide(make(), PUSH_USER, rules=rules, tx=tx) == SEND
    tx.send(local(6, 9, 0))
    assert decide(make(), PUSH_USER, rules=rules, tx=tx).reason == "frequency_cap"


def test_window_starts() -> None:
    now = to_us(NOON)
    day = FrequencyCap("push", 1, "calendar_days", 1)
    assert SendGate.window_start(day, now, "Asia/Bangkok") == to_us(local(6, 0))
    assert SendGate.window_start(day, now, "America/New_York") == to_us(local(6, 0, 0, NEW_YORK)) == now  # midnight
    assert SendGate.window_start(FrequencyCap("email", 3, "rolling", 7), now, "Asia/Bangkok") == now - 7 * DAY_US + 1
    assert FrequencyCap("sms", 2, "rolling", 1).describe() == "at most 2 marketing sms per 1 days"
    assert FrequencyCap("push", 1, "calendar_days", 1, kind="promo").describe() == \
        "at most 1 promo push per local calendar day"


def test_the_users_zone_or_the_business_zone() -> None:
    gate = SendGate(GateRules(), business_timezone="Asia/Tokyo")
    assert gate.tz({"timezone": "Europe/London"}) == "Europe/London"
    assert gate.tz({}) == gate.tz({"timezone": ""}) == gate.tz({"timezone": 7}) == "Asia/Tokyo"
    assert SendGate(GateRules()).business_timezone == "Asia/Bangkok"
    # 23:00 in Tokyo is 21:00 in Bangkok: a user without a zone is quiet on the business's clock.
    at = dt.datetime(2026, 1, 6, 23, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert both_ways(gate, FakeTx(), make(at=at), PUSH_USER, at).reason == "quiet_hours"


# A batch shares the cap slots -------------------------------------------------------------------------------------

def test_in_a_batch_the_higher_priority_wins_the_slot_and_counts_for_the_rest() -> None:
    gate, tx = SendGate(GateRules()), FakeTx()
    items = [(make(mid=f"p{p}", priority=p), PUSH_USER, 0.0) for p in (10, 90, 50)]
    decisions = gate.decide_many(tx, items, to_us(NOON))  # type: ignore[arg-type]
    assert [d.reason for d in decisions] == ["frequency_cap", None, "frequency_cap"]
    ties = [(make(mid=f"t{n}"), PUSH_USER, 0.0) for n in range(3)]
    assert [d.action for d in gate.decide_many(tx, ties, to_us(NOON))] == [  # type: ignore[arg-type]
        "send", "suppress", "suppress"], "equal priorities: the first decided first"
    emails = [(make("email", mid=f"e{n}"), EVERY_ADDRESS, 0.0) for n in range(5)]
    tx.send(NOON - dt.timedelta(days=2), "email")
    assert [d.action for d in gate.decide_many(tx, emails, to_us(NOON))] == [  # type: ignore[arg-type]
        "send", "send", "suppress", "suppress", "suppress"]


def test_a_batch_counts_each_user_apart_in_their_own_zone_and_locks_only_capped_users() -> None:
    gate, tx = SendGate(GateRules()), FakeTx()
    at = local(6, 9, 0, NEW_YORK)  # Tue 6 Jan: 09:00 in New York, 21:00 in Bangkok
    tx.send(local(6, 0, 30, NEW_YORK), user="ny")   # today in New York
    tx.send(local(6, 10, 0), user="bkk")            # today in Bangkok (Mon 22:00 in New York)
    tx.send(local(5, 23, 0), user="bkk-fresh")      # yesterday in Bangkok
    items = [(make(user="ny", mid="a"), {**PUSH_USER, "timezone": "America/New_York"}, 0.0),
             (make(user="bkk", mid="b"), PUSH_USER, 0.0),
             (make(user="bkk-fresh", mid="c"), PUSH_USER, 0.0),
             (make("in_app", user="reader", mid="d"), PUSH_USER, 0.0)]
    decisions = gate.decide_many(tx, items, to_us(at))  # type: ignore[arg-type]
    assert [d.action for d in decisions] == ["suppress", "suppress", "send", "send"]
    assert tx.profiles.locked == [["bkk", "bkk-fresh", "ny"]]
    only_in_app = FakeTx()
    gate.decide_many(only_in_app, [items[3]], to_us(at))  # type: ignore[arg-type]
    assert only_in_app.profiles.locked == []
