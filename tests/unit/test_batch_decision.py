"""The one pure send decision (``decide_many``) on plain values: no database, no clock. Every rule at its edges:
send time, the channel switch (SPEC 4.C), expiry, address, transactional, consent, holdouts, quiet hours, the caps
in the user's own local day and in a rolling window, priority within a batch, and a real provider's address."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from growthengine.clock import to_us
from growthengine.domain.messages import Message
from growthengine.gate.batch_decision import decide_many
from growthengine.gate.bucketing import in_holdout
from growthengine.gate.history import Candidate, History, Policy
from growthengine.gate.outcome import SEND, Decision
from growthengine.gate.rules import GateRules, QuietHours
from growthengine.optimize.channel_scores import ChannelRule
from growthengine.optimize.send_time import SendTimeModel
from growthengine.optimize.send_time_population import PopulationSendTime

BKK = ZoneInfo("Asia/Bangkok")
NEW_YORK = ZoneInfo("America/New_York")
NOON = dt.datetime(2026, 1, 6, 12, 0, tzinfo=BKK)
DAY = dt.timedelta(days=1)
EVERYTHING = {"push_token": "tok", "email": "u@example.test", "phone": "+66812345678",
              "consent": {"push": True, "email": True, "sms": True, "in_app": True, "ads": True}}
ENGAGES_BY_PUSH = {"email": 0.05, "push": 0.95, "sms": 0.5, "in_app": 0.5}


def msg(channel: str = "push", kind: str = "marketing", *, mid: str = "m", user: str = "u1", flow: str = "f",
        priority: int = 50, expires: dt.datetime | None = None, at: dt.datetime = NOON) -> Message:
    return Message(id=mid, user_id=user, flow=flow, step="s", channel=channel, kind=kind, status="scheduled",
                   scheduled_us=to_us(at), updated_us=to_us(at), body="x", priority=priority,
                   expires_us=to_us(expires) if expires else None)


def one(message: Message, traits: dict[str, Any] | None = None, at: dt.datetime = NOON, *,
        sent: dict[tuple[str, str, str], list[tuple[int, str]]] | None = None, policy: Policy | None = None,
        holdout: float = 0.0, release: bool = False, scores: dict[str, dict[str, float]] | None = None,
        best_within: dt.timedelta | None = None) -> Decision:
    candidate = Candidate(message, EVERYTHING if traits is None else traits, holdout, release,
                          int(best_within / dt.timedelta(microseconds=1)) if best_within else 0)
    history = History(now_us=to_us(at), sent=sent or {}, channel_scores=scores or {})
    [decision] = decide_many([candidate], history, policy)
    return decision


def sent_at(*instants: dt.datetime, channel: str = "push", kind: str = "marketing",
            user: str = "u1") -> dict[tuple[str, str, str], list[tuple[int, str]]]:
    return {(user, channel, kind): [(to_us(at), f"old{i}") for i, at in enumerate(instants)]}


def test_expiry_at_the_instant_and_a_microsecond_before() -> None:
    assert one(msg(expires=NOON)) == Decision("suppress", "expired", detail="the message expired before it could go")
    assert one(msg(expires=NOON + dt.timedelta(microseconds=1))) == SEND


def test_an_address_per_channel_and_none_for_in_app() -> None:
    for channel, trait in (("push", "push_token"), ("email", "email"), ("sms", "phone")):
        for kind in ("marketing", "transactional"):
            assert one(msg(channel, kind), {**EVERYTHING, trait: ""}) == Decision(
                "suppress", "no_address", detail=f"the user has no {trait}")
        assert one(msg(channel), EVERYTHING) == SEND
    assert one(msg("in_app"), {"consent": {"in_app": True}}) == SEND


def test_consent_absent_false_or_malformed_suppresses_marketing_only() -> None:
    for consent in ({}, {"push": False}, {"push": "yes"}, None):
        traits = {"push_token": "tok", "consent": consent}
        assert one(msg(), traits) == Decision("suppress", "consent", detail="no opt-in to marketing on push")
        assert one(msg(kind="transactional"), traits) == SEND


def test_transactional_passes_holdouts_quiet_hours_and_caps_and_is_not_counted() -> None:
    night = NOON.replace(hour=23)
    rules = Policy(rules=GateRules(global_control_pct=100.0))
    full = sent_at(night - dt.timedelta(hours=1), kind="transactional")
    assert one(msg(kind="transactional", at=night), at=night, policy=rules, holdout=100, sent=full) == SEND
    # transactional pushes already sent today do not use up the marketing push of the day
    assert one(msg(), sent=sent_at(NOON - dt.timedelta(hours=1), kind="transactional")) == SEND


def test_a_transactional_push_let_through_in_a_batch_counts_against_no_marketing_cap() -> None:
    """Decided first (higher priority), the transactional push goes; the marketing push after it in the same batch
    still has the day's one slot."""
    batch = [Candidate(msg(kind="transactional", mid="t1", priority=90), EVERYTHING),
             Candidate(msg(kind="transactional", mid="t2", priority=80), EVERYTHING),
             Candidate(msg(mid="m1", priority=50), EVERYTHING),
             Candidate(msg(mid="m2", priority=40), EVERYTHING)]
    decided = decide_many(batch, History(now_us=to_us(NOON)))
    assert [(d.action, d.reason) for d in decided] == [("send", None), ("send", None), ("send", None),
                                                        ("suppress", "frequency_cap")]


def test_candidates_of_one_batch_are_each_decided_as_of_their_own_instant() -> None:
    """Timers due milliseconds apart are decided together: quiet hours, expiry and the local day are each
    candidate's own, and sends count for the later instants only."""
    edge = NOON.replace(hour=22)
    tick = dt.timedelta(milliseconds=1)
    before = Candidate(msg(mid="a", user="a", at=edge - tick), EVERYTHING, at_us=to_us(edge - tick))
    at_edge = Candidate(msg(mid="b", user="b", at=edge), EVERYTHING, at_us=to_us(edge))
    expiring = Candidate(msg(mid="c", user="c", at=edge - tick, expires=edge), EVERYTHING, at_us=to_us(edge - tick))
    decided = decide_many([at_edge, before, expiring], History(now_us=to_us(edge)))
    assert [(d.action, d.reason) for d in decided] == [("defer", "quiet_hours"), ("send", None), ("send", None)]
    # A New York user's local midnight falls between two instants of the batch: two local days, two pushes.
    midnight = dt.datetime(2026, 1, 7, 0, 0, tzinfo=NEW_YORK)
    ny = {**EVERYTHING, "timezone": "America/New_York"}
    late = Candidate(msg(mid="late", at=midnight - tick, priority=10), ny, at_us=to_us(midnight - tick))
    early = Candidate(msg(mid="early", at=midnight, priority=90), ny, at_us=to_us(midnight))
    again = Candidate(msg(mid="again", at=midnight + tick, priority=90), ny, at_us=to_us(midnight + tick))
    quiet = Policy(rules=GateRules(quiet_hours=QuietHours(start=(0, 0), end=(0, 0))))  # no quiet hours
    decided = decide_many([again, early, late], History(now_us=to_us(midnight + tick)), quiet)
    # In time order, whatever the priorities: the 23:59:59.999 push takes the 6 Jan slot, 00:00 the 7 Jan one.
    assert [(d.action, d.reason) for d in decided] == [("suppress", "frequency_cap"), ("send", None),
                                                        ("send", None)]


def test_holdouts_come_after_consent() -> None:
    everyone = Policy(rules=GateRules(global_control_pct=100.0))
    assert one(msg(), policy=everyone) == Decision("suppress", "holdout",
                                                   detail="the user is in the global control group")
    assert one(msg(), {"push_token": "t", "consent": {}}, policy=everyone).reason == "consent"
    assert one(msg(flow="cart"), holdout=100.0) == Decision("suppress", "holdout",
                                                            detail="the user is in cart's holdout")
    assert one(msg(flow="cart"), holdout=0.0) == SEND
    user = next(u for u in (f"u{i}" for i in range(200)) if not in_holdout("cart", u, 50.0))
    assert one(msg(flow="cart", user=user), holdout=50.0) == SEND


def test_quiet_hours_at_their_edges_in_the_users_zone() -> None:
    def at(hour: int, minute: int = 0, zone: ZoneInfo = BKK) -> dt.datetime:
        return dt.datetime(2026, 1, 6, hour, minute, tzinfo=zone)

    assert one(msg(), at=at(21, 59)) == SEND
    late = one(msg(), at=at(22, 0))
    assert (late.action, late.reason, late.at_us) == ("defer", "quiet_hours", to_us(at(8, 0) + DAY))
    early = one(msg(at=at(7, 59)), at=at(7, 59))
    assert (early.action, early.at_us) == ("defer", to_us(at(8, 0)))
    assert one(msg(at=at(8, 0)), at=at(8, 0)) == SEND, "08:00 local is no longer quiet: the push goes, not a day later"
    new_yorker = {**EVERYTHING, "timezone": "America/New_York"}
    assert one(msg(), new_yorker, at(23, 0)) == SEND  # 11:00 in New York
    held = one(msg(at=at(23, 0, NEW_YORK)), new_yorker, at(23, 0, NEW_YORK))
    assert held.at_us == to_us(at(8, 0, NEW_YORK) + DAY) and "America/New_York" in held.detail
    assert one(msg(expires=at(8, 0) + DAY), at=at(22, 0)) == Decision(
        "suppress", "quiet_hours", detail="quiet hours, and it expires before they end")
    assert one(msg(), at=at(23, 0), release=True) == SEND, "a held message coming due is not held again"
    for channel in ("email", "sms", "in_app"):
        assert one(msg(channel), at=at(23, 0)) == SEND


def test_the_daily_push_cap_counts_the_users_own_local_day() -> None:
    assert one(msg(), sent=sent_at(NOON - dt.timedelta(hours=1))) == Decision(
        "suppress", "frequency_cap", detail="at most 1 marketing push per local calendar day")
    midnight = NOON.replace(hour=0)
    assert one(msg(), sent=sent_at(midnight)).reason == "frequency_cap"
    assert one(msg(), sent=sent_at(midnight - dt.timedelta(microseconds=1))) == SEND
    # New York: 09:00 local; a push at 23:30 New York time yesterday was another day there
    ny_now = dt.datetime(2026, 1, 6, 9, 0, tzinfo=NEW_YORK)
    new_yorker = {**EVERYTHING, "timezone": "America/New_York"}
    yesterday = dt.datetime(2026, 1, 5, 23, 30, tzinfo=NEW_YORK)
    assert one(msg(at=ny_now), new_yorker, ny_now, sent=sent_at(yesterday)) == SEND
    assert one(msg(at=ny_now), EVERYTHING, ny_now, sent=sent_at(yesterday)).reason == "frequency_cap"  # same BKK day
    assert one(msg(mid="old0"), sent=sent_at(NOON)) == SEND, "a message never counts against itself"


def test_three_emails_in_a_rolling_week() -> None:
    two = [NOON - dt.timedelta(days=1), NOON - dt.timedelta(days=2)]
    inside = NOON - dt.timedelta(days=6, hours=23)
    outside = NOON - dt.timedelta(days=7)
    assert one(msg("email"), sent=sent_at(*two, inside, channel="email")) == Decision(
        "suppress", "frequency_cap", detail="at most 3 marketing email per 7 days")
    assert one(msg("email"), sent=sent_at(*two, outside, channel="email")) == SEND
    assert one(msg("email"), sent=sent_at(*two, channel="email")) == SEND


def test_a_batch_gates_by_priority_and_counts_what_it_lets_through() -> None:
    low, high, tie = msg(mid="low", priority=10), msg(mid="high", priority=90), msg(mid="tie", priority=10)
    other = msg(mid="other", user="u2")
    history = History(now_us=to_us(NOON))
    decided = decide_many([Candidate(m, EVERYTHING) for m in (low, high, tie, other)], history)
    assert [(d.action, d.reason) for d in decided] == [
        ("suppress", "frequency_cap"), ("send", None), ("suppress", "frequency_cap"), ("send", None)]
    emails = [Candidate(msg("email", mid=f"e{i}"), EVERYTHING) for i in range(5)]
    assert [d.action for d in decide_many(emails, history)] == ["send"] * 3 + ["suppress"] * 2


def test_the_decision_is_pure() -> None:
    history = History(now_us=to_us(NOON), sent=sent_at(NOON - DAY))
    candidates = [Candidate(msg(mid=f"m{i}", priority=i), EVERYTHING) for i in range(3)]
    before = copy.deepcopy((history, candidates))
    first = decide_many(candidates, history)
    assert decide_many(candidates, history) == first
    assert (history, candidates) == before


def test_the_channel_switch_then_the_gate_on_the_new_channel() -> None:
    switched = one(msg("email"), scores={"u1": ENGAGES_BY_PUSH})
    assert switched.action == "send" and switched.route is not None
    assert (switched.route.channel, switched.route.reason) == ("push", "channel_score")
    night = NOON.replace(hour=23)
    held = one(msg("email", at=night), at=night, scores={"u1": ENGAGES_BY_PUSH})
    assert (held.action, held.reason) == ("defer", "quiet_hours"), "the push it became keeps the push rules"
    capped = one(msg("email"), scores={"u1": ENGAGES_BY_PUSH}, sent=sent_at(NOON - dt.timedelta(hours=1)))
    assert capped.reason == "frequency_cap", "and the push cap"
    for traits in ({**EVERYTHING, "push_token": ""}, {**EVERYTHING, "consent": {"email": True}}):
        assert one(msg("email"), traits, scores={"u1": ENGAGES_BY_PUSH}) == SEND, "cannot receive push: kept"
    assert one(msg("email"), scores={"u1": {**ENGAGES_BY_PUSH, "email": 0.1}}) == SEND  # not below 0.1
    assert one(msg("email"), scores={"u1": {**ENGAGES_BY_PUSH, "push": 0.8}}) == SEND  # not above 0.8
    assert one(msg("email")) == SEND, "no evidence: kept"
    assert one(msg("email", "transactional"), scores={"u1": ENGAGES_BY_PUSH}).route is None
    assert one(msg("email"), scores={"u1": ENGAGES_BY_PUSH}, release=True).route is None
    assert one(msg("email"), scores={"u1": ENGAGES_BY_PUSH}, policy=Policy(route=False)).route is None


def test_the_best_send_time_defers_to_it() -> None:
    morning = NOON.replace(hour=9)
    twelve_hours = dt.timedelta(hours=12)
    booked = msg(at=morning)
    booked.reason = "planned"
    decision = one(booked, at=morning, best_within=twelve_hours)
    assert decision.send_time is not None and decision.send_time.reason == "global_peak"
    evening = to_us(NOON.replace(hour=18))  # no history: the population's evening peak, in the user's zone
    assert decision == Decision("defer", "send_time", evening, "booked for the user's best time",
                                send_time=decision.send_time)
    new_yorker = one(msg(at=morning), {**EVERYTHING, "timezone": "America/New_York"}, morning,
                     best_within=twelve_hours)
    assert new_yorker.action == "send" and new_yorker.send_time is not None  # 21:00 there: the earliest allowed
    assert new_yorker.send_time.reason == "global_earliest"
    night = NOON.replace(hour=22)
    push = one(msg(at=night), at=night, best_within=dt.timedelta(hours=2))
    assert push.send_time is not None and push.send_time.reason == "global_earliest_after_quiet"
    assert (push.action, push.reason, push.at_us) == ("defer", "send_time", to_us(NOON.replace(hour=8) + DAY))
    assert one(msg("email", at=night), at=night, best_within=dt.timedelta(hours=2)).action == "send"
    switched = one(msg("email", at=morning), at=morning, best_within=twelve_hours, scores={"u1": ENGAGES_BY_PUSH})
    assert switched.route is not None and (switched.action, switched.reason) == ("defer", "channel_score")
    assert one(msg(at=morning), at=morning, best_within=twelve_hours, policy=Policy(send_time=False)) == SEND
    assert one(msg(at=morning), at=morning, best_within=twelve_hours, release=True) == SEND


def test_a_deferred_candidate_does_not_stop_the_batch() -> None:
    morning = NOON.replace(hour=9)
    timed = Candidate(msg(mid="timed", at=morning), EVERYTHING, best_within_us=12 * 3_600_000_000)
    plain = Candidate(msg(mid="plain", user="u2", at=morning), EVERYTHING)
    decided = decide_many([timed, plain], History(now_us=to_us(morning)))
    assert [d.action for d in decided] == ["defer", "send"]
    unwilling = Candidate(msg(mid="unwilling", user="u3", at=morning), {**EVERYTHING, "consent": {}})
    decided = decide_many([timed, unwilling], History(now_us=to_us(morning)))
    assert [(d.action, d.reason) for d in decided] == [("defer", "send_time"), ("suppress", "consent")]


def test_the_policys_own_channel_rules() -> None:
    to_sms = Policy(channel_rules=(ChannelRule("email", 0.1, "sms", 0.4),))
    decision = one(msg("email"), scores={"u1": ENGAGES_BY_PUSH}, policy=to_sms)
    assert decision.route is not None and decision.route.channel == "sms"


def test_a_real_providers_channel_needs_a_usable_address() -> None:
    providers = Policy(provider_channels=frozenset({"ads", "push"}))
    assert one(msg("ads"), {"consent": {"ads": True}}, policy=providers) == Decision("fail", "no_address")
    assert one(msg("ads"), {"email": "  ", "consent": {"ads": True}}, policy=providers) == Decision("fail",
                                                                                                 "no_address")
    assert one(msg("ads"), {"email": "a@b.co", "consent": {"ads": True}}, policy=providers) == SEND
    assert one(msg("ads"), {"consent": {"ads": True}}) == SEND, "the local outbox needs no address"
    assert one(msg("push"), {**EVERYTHING, "push_token": " "}, policy=providers) == Decision("fail", "no_address")


def test_a_message_booked_later_waits_unless_it_is_coming_due() -> None:
    later = msg(at=NOON + dt.timedelta(hours=3))
    later.reason = "send_time"
    assert one(later) == Decision("defer", "send_time", to_us(NOON + dt.timedelta(hours=3)),
                                  "booked for the user's best time")
    assert one(later, release=True) == SEND


def test_the_users_own_send_time_model_on_the_planned_channel() -> None:
    morning = NOON.replace(hour=9)
    opens = [(dt.datetime(2026, 1, day, 13, 0, tzinfo=BKK), 1.0) for day in range(1, 6)] * 3
    model = SendTimeModel.fit(opens, now=morning, tz="Asia/Bangkok")
    candidate = Candidate(msg(at=morning), EVERYTHING, best_within_us=12 * 3_600_000_000)
    own = decide_many([candidate], History(now_us=to_us(morning), send_time_models={("u1", "push"): model}))[0]
    assert (own.action, own.at_us) == ("defer", to_us(NOON.replace(hour=13)))
    assert own.send_time is not None and own.send_time.reason == "personal_peak"
    other = decide_many([candidate], History(now_us=to_us(morning), send_time_models={("u1", "email"): model}))[0]
    assert other.at_us == to_us(NOON.replace(hour=18)), "another channel's model is not this one's"
    in_new_york = Candidate(msg(at=morning), {**EVERYTHING, "timezone": "America/New_York"},
                            best_within_us=12 * 3_600_000_000)
    moved = decide_many([in_new_york], History(now_us=to_us(morning), send_time_models={("u1", "push"): model}))[0]
    assert moved.send_time is not None and moved.send_time.inputs["tz"] == "America/New_York"
    assert moved.action == "send", "the peak is read in the user's own zone"
    explorer = Candidate(msg(at=morning, user="x16"), EVERYTHING, best_within_us=12 * 3_600_000_000)
    explored = decide_many([explorer], History(now_us=to_us(morning), send_time_models={("x16", "push"): model}))[0]
    assert explored.send_time is not None and explored.send_time.reason == "explore"  # x16 draws exploration
    assert explored.at_us == to_us(NOON)


def test_each_cap_counts_its_own_window_in_one_batch() -> None:
    five_days_ago = [NOON - dt.timedelta(days=5, hours=h) for h in range(3)]
    history = History(now_us=to_us(NOON), sent=sent_at(*five_days_ago, channel="email"))
    decided = decide_many([Candidate(msg("push", mid="p"), EVERYTHING), Candidate(msg("email", mid="e"), EVERYTHING)],
                          history)
    assert [(d.action, d.reason) for d in decided] == [("send", None), ("suppress", "frequency_cap")]


def test_a_plain_message_booked_later_keeps_the_best_time_reason() -> None:
    later = msg(at=NOON + dt.timedelta(hours=1))
    assert one(later).reason == "send_time"


def test_a_thin_history_leans_on_the_population_prior_of_the_planned_channel() -> None:
    """One open at 13:00 against a population that engages at 10:00: the shrunk profile peaks at 10:00; without
    the population (or with another channel's) the built-in pattern leaves the user's own 13:00 on top."""
    morning = NOON.replace(hour=9)
    model = SendTimeModel.fit([(dt.datetime(2026, 1, 5, 13, 0, tzinfo=BKK), 1.0)], now=morning, tz="Asia/Bangkok")
    share = np.full(168, 0.001)
    share[10::24] = 1.0  # 10:00 local on every day of the week
    candidate = Candidate(msg(at=morning), EVERYTHING, best_within_us=12 * 3_600_000_000)

    def booked(populations: dict[str, PopulationSendTime]) -> int | None:
        history = History(now_us=to_us(morning), send_time_models={("u1", "push"): model},
                          send_time_population=populations)
        [decision] = decide_many([candidate], history)
        assert decision.action == "defer" and decision.send_time is not None
        assert decision.send_time.reason == "personal_peak"
        return decision.at_us

    assert booked({"push": PopulationSendTime(share)}) == to_us(NOON.replace(hour=10))
    assert booked({"email": PopulationSendTime(share)}) == booked({}) == to_us(NOON.replace(hour=13))


def test_a_message_booked_later_keeps_its_own_reason() -> None:
    held = msg(at=NOON + dt.timedelta(hours=3))
    held.reason = "quiet_hours"
    assert one(held) == Decision("defer", "quiet_hours", to_us(NOON + dt.timedelta(hours=3)),
                                 "booked for the user's best time")


def test_a_timezone_that_is_not_text_is_the_business_zone() -> None:
    late = NOON.replace(hour=23)  # 23:00 in Bangkok: quiet hours until 08:00 there
    for zone in (7, "", None, ["Asia/Tokyo"]):
        decision = one(msg(at=late), {**EVERYTHING, "timezone": zone}, at=late)
        assert (decision.action, decision.reason, decision.at_us) == (
            "defer", "quiet_hours", to_us(NOON.replace(hour=8) + DAY)), zone
