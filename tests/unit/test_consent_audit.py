"""The consent audit trail (consent/audit.py): which identify traits and ``unsubscribed`` events become audit rows,
written through the real consent store on a throw-away SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from growthengine.consent.audit import ConsentAudit
from growthengine.domain.events import Event
from growthengine.storage.consent_store import ConsentChange
from growthengine.storage.unit_of_work import Store

ALL = ("push", "email", "sms", "in_app", "ads")


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = Store.open(sqlite_url)
    yield opened
    opened.close()


def identify(user: str, ts: int = 1_000, **traits: Any) -> Event:
    return Event(user_id=user, name="identify", ts_us=ts, type="identify", properties=traits)


def unsubscribed(user: str, ts: int = 2_000, **properties: Any) -> Event:
    return Event(user_id=user, name="unsubscribed", ts_us=ts, properties=properties)


def audit(store: Store, *events: Event, users: tuple[str, ...] = ("u1",)) -> dict[str, list[ConsentChange]]:
    with store.transaction() as tx:
        ConsentAudit().on_events(tx, list(events), {})
    with store.read() as tx:
        return {user: tx.consent.for_user(user) for user in users}


def test_identify_consent_is_recorded_per_known_channel_with_its_time_and_source(store: Store) -> None:
    trail = audit(store, identify("u1", ts=1_500, consent={"email": True, "push": False}))
    assert trail["u1"] == [ConsentChange("u1", "email", True, 1_500, "identify"),
                           ConsentChange("u1", "push", False, 1_500, "identify")]


def test_identify_consent_keeps_only_known_channels_and_true_booleans(store: Store) -> None:
    trail = audit(store, identify("u1", consent={"fax": True, "sms": "yes", "in_app": 1, "ads": None,
                                                 "email": False, "push": True}))
    assert [(c.channel, c.granted) for c in trail["u1"]] == [("email", False), ("push", True)]


def test_consent_that_is_not_a_mapping_or_not_on_an_identify_is_not_audited(store: Store) -> None:
    trail = audit(store,
                  identify("u1", consent=["email"]),
                  identify("u1", consent="email"),
                  identify("u1", email="u1@example.test"),
                  Event(user_id="u1", name="profile_updated", ts_us=5, properties={"consent": {"email": True}}))
    assert trail["u1"] == []


def test_anonymous_visitors_are_never_audited_and_do_not_stop_the_batch(store: Store) -> None:
    trail = audit(store,
                  identify("anon:a1", consent={"email": True}),
                  unsubscribed("anon:a1", channel="email"),
                  identify("u1", consent={"email": True}),
                  identify("the-anon:u2", consent={"sms": True}),
                  users=("anon:a1", "u1", "the-anon:u2"))
    assert trail["anon:a1"] == []
    assert [c.channel for c in trail["u1"]] == ["email"]
    assert [c.channel for c in trail["the-anon:u2"]] == ["sms"], "only the anon: prefix marks an anonymous user"


def test_an_unsubscribe_from_one_channel_withdraws_that_channel_with_its_source_and_message(store: Store) -> None:
    trail = audit(store, unsubscribed("u1", ts=7_000, channel="email", source="one_click_link", message_id="m-42"))
    assert trail["u1"] == [ConsentChange("u1", "email", False, 7_000, "one_click_link", "m-42")]


@pytest.mark.parametrize("channel", [None, "all"])
def test_an_unsubscribe_without_a_channel_or_from_all_withdraws_every_channel(store: Store,
                                                                              channel: str | None) -> None:
    props = {} if channel is None else {"channel": channel}
    trail = audit(store, unsubscribed("u1", ts=3_000, **props))
    assert trail["u1"] == [ConsentChange("u1", c, False, 3_000, "unsubscribed event") for c in ALL]


def test_an_unsubscribe_from_an_unknown_channel_changes_nothing(store: Store) -> None:
    trail = audit(store, unsubscribed("u1", channel="fax"), unsubscribed("u1", channel="ALL"))
    assert trail["u1"] == []


def test_the_unsubscribe_source_is_cut_to_64_characters_and_defaults_when_empty(store: Store) -> None:
    long_source = "s" * 63 + "xyz"
    trail = audit(store,
                  unsubscribed("u1", ts=1, channel="sms", source=long_source),
                  unsubscribed("u1", ts=2, channel="sms", source=""),
                  unsubscribed("u1", ts=3, channel="sms", source=12345))
    assert [c.source for c in trail["u1"]] == ["s" * 63 + "x", "unsubscribed event", "12345"]


def test_the_unsubscribe_detail_is_the_message_id_as_text_or_nothing(store: Store) -> None:
    trail = audit(store,
                  unsubscribed("u1", ts=1, channel="push", message_id=77),
                  unsubscribed("u1", ts=2, channel="push", message_id=""),
                  unsubscribed("u1", ts=3, channel="push"))
    assert [c.detail for c in trail["u1"]] == ["77", None, None]


def test_merging_an_anonymous_visitor_moves_no_consent(store: Store) -> None:
    with store.transaction() as tx:
        ConsentAudit().on_merge(tx, "anon:a1", "u1")
    assert audit(store)["u1"] == []


def erase(user: str, ts: int = 9_000, **properties: Any) -> Event:
    return Event(user_id=user, name="erase", ts_us=ts, type="command", properties=properties)


def test_an_erasure_deletes_the_users_and_their_visitors_consent_and_keeps_one_row_under_its_token(
        store: Store) -> None:
    audit(store, identify("u1", ts=1, consent={"email": True}), identify("u2", ts=2, consent={"sms": True}),
          identify("u3", ts=3, consent={"push": True}))
    with store.transaction() as tx:  # a visitor's rows (kept before a merge) go with the user's
        tx.consent.record([ConsentChange("anon:a1", "push", True, 4, "identify"),
                           ConsentChange("anon:a2", "email", True, 5, "identify")])
    with store.transaction() as tx:
        ConsentAudit().on_erase_commands(tx, [
            erase("u1", ts=9_000, token="tok-1", anonymous=["anon:a1", 7, None], source="cli"),
            erase("u2", ts=9_500, token="tok-2"),
        ])
    with store.read() as tx:
        trails = {key: tx.consent.for_user(key) for key in ("u1", "u2", "u3", "anon:a1", "anon:a2", "tok-1", "tok-2")}
    assert trails["u1"] == trails["u2"] == trails["anon:a1"] == []
    assert [c.channel for c in trails["u3"]] == ["push"] and [c.channel for c in trails["anon:a2"]] == ["email"]
    assert trails["tok-1"] == [ConsentChange("tok-1", "all", False, 9_000, "erasure", "cli")]
    assert trails["tok-2"] == [ConsentChange("tok-2", "all", False, 9_500, "erasure", "api")]


def test_an_erasures_source_defaults_to_api_and_is_cut_to_16_characters(store: Store) -> None:
    with store.transaction() as tx:
        ConsentAudit().on_erase_commands(tx, [erase("u1", ts=1, token="t1", source=""),
                                              erase("u2", ts=2, token="t2", source="c" * 15 + "xyz"),
                                              erase("u3", ts=3, token=12, source=None, anonymous=None)])
    with store.read() as tx:
        rows = [tx.consent.for_user(key) for key in ("t1", "t2", "12")]
    assert [[(c.source, c.detail) for c in row] for row in rows] == [
        [("erasure", "api")], [("erasure", "c" * 15 + "x")], [("erasure", "api")]]
