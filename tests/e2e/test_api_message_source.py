"""The live simulator's feedback source (``ApiMessageSource``) against a real ``growth serve`` on the manual clock:
each message is handed over once, when it has gone out; held ones wait, suppressed ones never come."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest

from growthengine.simulate.feedback import ApiMessageSource, SimMessage
from tests.e2e.serve import START, clean_env, serving

pytestmark = pytest.mark.e2e

KEY = "e2e-source-admin"
ADMIN = {"Authorization": f"Bearer {KEY}"}
ALL = {"push": True, "email": True, "in_app": True}
BKK = dt.timezone(dt.timedelta(hours=7))


def handed(messages: list[SimMessage]) -> list[tuple[str, str, str]]:
    return sorted((m.user_id, m.flow, m.channel) for m in messages)


def test_the_api_message_source_hands_over_each_sent_message_once(tmp_path: Path) -> None:
    args = ["--db", f"sqlite:///{tmp_path / 'growth.db'}", "--clock", "manual", "--start", START]
    with serving(tmp_path, args, clean_env(api_key=KEY)) as server, \
            httpx.Client(base_url=server.base_url, headers=ADMIN, timeout=30) as http:

        def post(*calls: dict[str, Any]) -> None:
            answer = http.post("/v1/batch", json={"batch": list(calls)})
            assert answer.status_code == 200 and not answer.json()["rejected"], answer.text

        def advance_to(instant: dt.datetime) -> None:
            answer = http.post("/v1/clock/advance", json={"to": instant.isoformat()})
            assert answer.status_code == 200, answer.text

        def cart(user: str, listing: str) -> dict[str, Any]:
            return {"type": "track", "userId": user, "event": "add_to_cart",
                    "properties": {"listing_id": listing, "title": "Fuji X100V", "price": 32000, "stock": 9}}

        post({"type": "track", "userId": "seller", "event": "listing_created",  # something for the digest
              "properties": {"listing_id": "L9", "title": "Leica M6", "price": 90000, "category": "cameras"}},
             {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.test", "push_token": "t1",
                                                              "consent": ALL}},
             {"type": "identify", "userId": "u2", "traits": {"push_token": "t2", "consent": {"email": True},
                                                              "email": "u2@example.test"}},
             cart("u1", "L1"), cart("u2", "L2"))
        advance_to(dt.datetime(2026, 1, 5, 10, 0, tzinfo=BKK))
        source = ApiMessageSource(http, page_size=2)  # several pages per call
        # u1's nudge went; u2's was suppressed (no push opt-in); the weekly digests wait for 18:00 (best time).
        ledger = http.get("/v1/messages", params={"limit": 100}).json()["messages"]
        assert sorted((m["userId"], m["flow"], m["status"]) for m in ledger) == [
            ("u1", "cart_abandonment", "sent"), ("u1", "weekly_digest", "scheduled"),
            ("u2", "cart_abandonment", "suppressed"), ("u2", "weekly_digest", "scheduled")]
        first = source.new_messages()
        assert handed(first) == [("u1", "cart_abandonment", "push")]
        assert first[0].sent_at == dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.UTC) and first[0].listing_id is None
        assert source.new_messages() == []
        advance_to(dt.datetime(2026, 1, 5, 18, 0, tzinfo=BKK))
        digests = source.new_messages()
        assert handed(digests) == [("u1", "weekly_digest", "email"), ("u2", "weekly_digest", "email")]
        assert {m.sent_at for m in digests} == {dt.datetime(2026, 1, 5, 11, 0, tzinfo=dt.UTC)}
        assert source.new_messages() == []
        # A push held for quiet hours comes once it has gone, at 08:00.
        advance_to(dt.datetime(2026, 1, 5, 21, 30, tzinfo=BKK))
        post(cart("u1", "L3"))
        advance_to(dt.datetime(2026, 1, 5, 23, 0, tzinfo=BKK))
        assert source.new_messages() == []
        advance_to(dt.datetime(2026, 1, 6, 8, 0, tzinfo=BKK))
        [held] = source.new_messages()
        assert (held.user_id, held.flow, held.sent_at) == ("u1", "cart_abandonment",
                                                           dt.datetime(2026, 1, 6, 1, 0, tzinfo=dt.UTC))
        assert source.new_messages() == []
        # A source the engine refuses hears of nothing (and says so once in the log).
        with httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer wrong"}) as refused:
            assert ApiMessageSource(refused).new_messages() == []
