"""PDPA erasure through the API on the manual clock (CONTRACT.md 10): a user with a history in every part of the
engine is erased; nothing naming them is left anywhere, their messages keep counting under a one-way token, the ads
audience gets a removal, the consent audit records the erasure, and the same id identified again is a new person."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from tests.erasure_traces import traces
from tests.scenarios.story import Story, messages
from tests.unit.api_client import ADMIN, WRITE, api_client, assert_error

pytestmark = pytest.mark.anyio

USER = "erase-me-7f3a"
EMAIL = "Nok.Erase@Example.test"
PHONE = "+66812345670"
PUSH = "push-token-erase-9q"
VISITOR = "visitor-erase-41"
TITLE = "Leica M6 erase-test"
EVERYTHING = {"push": True, "email": True, "sms": True, "in_app": True, "ads": True}


def live_story(engine: Engine, clock: ManualClock) -> Story:
    """A visitor who signed up, opened the app for 12 days, became a seller, favorited, listed, abandoned a cart
    (push, coupon, email, in-app modal), then went quiet (the Winback ads audience took them in)."""
    story = Story(engine, clock)
    assert not engine.ingest([{"type": "page", "anonymousId": VISITOR, "name": "Home"}]).rejected
    assert not engine.ingest([{"type": "identify", "userId": USER, "anonymousId": VISITOR,
                               "traits": {"email": EMAIL, "phone": PHONE, "push_token": PUSH, "is_seller": True,
                                          "consent": EVERYTHING}}]).rejected
    start = story.now - dt.timedelta(days=12)
    for d in range(12):
        story.track(USER, "app_opened", at=start + dt.timedelta(days=d))
    story.track(USER, "seller_registered")
    story.track(USER, "favorite_added", listing_id="L9")
    story.track(USER, "listing_created", listing_id="L5", title="my camera", price=900, category="cameras")
    story.track(USER, "add_to_cart", listing_id="L1", title=TITLE, price=32000, stock=1)
    story.advance(days=32)
    return story


async def test_erasure_leaves_nothing_but_counts_and_the_audit(engine: Engine, clock: ManualClock) -> None:
    story = live_story(engine, clock)
    mine = messages(engine, USER)
    assert {m["flow"] for m in mine} >= {"cart_abandonment", "audience:Winback Campaign"}
    assert any(m["channel"] == "in_app" for m in mine) and any(m["channel"] == "ads" for m in mine)
    with engine.store.transaction() as tx:
        assert tx.coupons.for_user(USER) and tx.runs.for_user(USER) and tx.consent.for_user(USER)
    # A worker that has not caught up: an event and a consent change still wait in the log.
    engine.ingestion.ingest([{"type": "track", "userId": USER, "event": "add_to_cart",
                              "properties": {"listing_id": "L2", "title": TITLE, "price": 100}},
                             {"type": "identify", "userId": USER, "traits": {"consent": {"sms": False}}}])
    needles = [USER, EMAIL, EMAIL.lower(), PHONE, PUSH, VISITOR, TITLE]
    link = next(m.data["unsubscribe_url"] for m in engine.messages(user_id=USER, channel="email", limit=100))

    async with api_client(engine) as client:
        kpis_before = (await client.get("/v1/kpis", params={"flow": "cart_abandonment"}, headers=ADMIN)).json()
        total_before = len(messages(engine))
        assert (await client.get(f"/v1/users/{USER}/inbox", headers=ADMIN)).json()

        assert_error(await client.delete(f"/v1/users/{USER}", headers=WRITE), 403)
        answer = await client.delete(f"/v1/users/{USER}", headers=ADMIN)
        assert answer.status_code == 202, answer.text
        body = answer.json()
        token = body["erasureToken"]
        assert body["userId"] == USER and token.startswith("erased:") and USER not in token
        assert body["audienceRemovals"] == 1 and body["eventsDeleted"] > 15

        assert_error(await client.get(f"/v1/users/{USER}", headers=ADMIN), 404, "not_found")
        assert_error(await client.get(f"/v1/users/{USER}/export", headers=ADMIN), 404, "not_found")
        assert_error(await client.delete(f"/v1/users/{USER}", headers=ADMIN), 404, "not_found")
        assert_error(await client.delete("/v1/users/nobody-at-all", headers=ADMIN), 404, "not_found")

        with engine.store.transaction() as tx:
            left = traces(tx.conn, needles)
            assert left == [], left
            # The audit keeps the fact, under the token, with who asked; nothing else of the consent history.
            assert [(c.channel, c.granted, c.source, c.detail) for c in tx.consent.for_user(token)] == [
                ("all", False, "erasure", "api")]
            assert tx.coupons.for_user(token), "coupons stay redeemable, under the token"
            [removal] = [r for r in tx.messages.outbox(channel="ads") if r["payload"].get("action") == "remove"]
        assert removal["payload"]["email_sha256"] == hashlib.sha256(EMAIL.lower().encode()).hexdigest()
        assert removal["payload"]["user_id"] == token

        # Counted as before: the flow's KPIs are unchanged, every message is still in the ledger (one removal more).
        assert (await client.get("/v1/kpis", params={"flow": "cart_abandonment"}, headers=ADMIN)).json() == kpis_before
        assert len(messages(engine)) == total_before + 1
        kept = messages(engine, token)
        assert len(kept) == len(mine) + 1
        assert all(m["body"] == "" and not m.get("title") and not m.get("coupon") for m in kept
                   if m["step"] != "remove")
        assert kept[-1]["step"] == "remove" and kept[-1]["status"] == "sent"
        assert (await client.get(f"/v1/users/{USER}/inbox", headers=ADMIN)).status_code == 404

        # An old email's one-click unsubscribe link still answers, and recreates nothing of the user.
        assert (await client.post("/u/" + link.rsplit("/u/", 1)[1])).status_code == 200
        assert (await client.get(f"/v1/users/{USER}", headers=ADMIN)).status_code == 404

        # The same id again is a new person: no consent, no memberships, no history.
        again = {"userId": USER, "traits": {"name": "Someone new"}}
        assert (await client.post("/v1/identify", json=again, headers=WRITE)).status_code == 200
        view = (await client.get(f"/v1/users/{USER}", headers=ADMIN)).json()
        assert view["traits"] == {"name": "Someone new"} and view["segments"] == []
        export = (await client.get(f"/v1/users/{USER}/export", headers=ADMIN)).json()
        assert export["consentHistory"] == [] and export["memberships"] == [] and export["messages"] == []
        assert export["flowRuns"] == [] and export["coupons"] == [] and export["favorites"] == []
        assert [e["name"] for e in export["events"]] == ["identify"]
    story.advance(days=3)
    assert messages(engine, USER) == [], "nothing of the old runs reaches the new person"
