"""Consent: the audit trail, the one-click unsubscribe link (RFC 8058) and its effect on the next send."""

from __future__ import annotations

import pytest

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from tests.scenarios.story import Story, messages
from tests.unit.api_client import api_client

pytestmark = pytest.mark.anyio


async def test_one_click_unsubscribe_removes_email_consent_at_once_and_is_audited(
        engine: Engine, clock: ManualClock) -> None:
    story = Story(engine, clock)
    story.identify("s1", email="s1@example.test", consent={"email": True, "in_app": True}, is_seller=True)
    story.track("s1", "seller_registered")
    story.advance(days=3)
    email = next(m for m in engine.messages(user_id="s1", channel="email"))
    link = email.data["unsubscribe_url"]
    token = link.rsplit("/u/", 1)[1]
    with engine.store.transaction() as tx:
        [row] = [r for r in tx.messages.outbox(channel="email") if r["message_id"] == email.id]
    assert row["payload"]["headers"] == {"List-Unsubscribe": f"<{link}>",
                                         "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    async with api_client(engine) as client:
        page = await client.get(f"/u/{token}")
        assert page.status_code == 200 and "ยกเลิก" in page.text
        assert engine.user_view("s1")["traits"]["consent"]["email"] is True, "a GET never unsubscribes"  # type: ignore[index]
        done = await client.post(f"/u/{token}", content="List-Unsubscribe=One-Click")
        assert done.status_code == 200
        assert (await client.post(f"/u/{token}x")).status_code == 400
    assert engine.user_view("s1")["traits"]["consent"] == {"email": False, "in_app": True}  # type: ignore[index]
    story.advance(days=2)
    second = [m for m in messages(engine, "s1", channel="email") if m["step"] == "coach_email_2"]
    assert (second[0]["status"], second[0]["reason"]) == ("suppressed", "consent")
    with engine.store.transaction() as tx:
        trail = [(c.channel, c.granted, c.source) for c in tx.consent.for_user("s1")]
    assert trail == [("email", True, "identify"), ("in_app", True, "identify"), ("email", False, "one_click_link")]
