"""``POST /v1/config/flows/{key}/preview`` (issue 15): a flow's path for a chosen user, saved or draft, on the
manual clock (Mon 5 Jan 2026 09:00 ICT); nothing is saved or sent."""

from __future__ import annotations

import pytest

from growthengine.engine import Engine
from tests.unit.api_client import ADMIN, WRITE, api_client, assert_error

pytestmark = pytest.mark.anyio

# An event-triggered draft whose push falls at 23:00 Bangkok time, in quiet hours.
LATE_TIP = {"name": "Late tip", "trigger": {"event": "tip_due"},
            "steps": [{"wait": {"for": "14h"}},
                      {"name": "tip_push", "send": {"channel": "push", "kind": "marketing",
                                                    "template": "window_shopper_first_buy_push"}}]}


def _users(engine: Engine) -> None:
    engine.ingest([
        {"type": "identify", "userId": "ann", "traits": {"language": "en", "push_token": "tok", "email": "a@x.test",
                                                        "consent": {"push": True, "email": True}}},
    ])


async def test_draft_path_with_its_deferred_push_and_nothing_saved(any_engine: Engine) -> None:
    engine = any_engine
    _users(engine)
    async with api_client(engine) as client:
        answer = await client.post("/v1/config/flows/late_tip/preview", headers=ADMIN,
                                   json={"userId": "ann", "flow": LATE_TIP, "trigger": {"source": "test"}})
        assert answer.status_code == 200, answer.text
        found = answer.json()
        assert (found["flow"], found["userId"], found["at"]) == ("late_tip", "ann", "2026-01-05T02:00:00Z")
        assert found["enters"] is True and found["reason"] == "tip_due now (as given)"
        wait, push = found["steps"]
        assert wait["type"] == "wait" and wait["untilLocal"] == {"th": "5 ม.ค. 2569 23:00", "en": "5 Jan 2026, 23:00"}
        assert push["decision"]["action"] == "defer" and push["decision"]["reason"] == "quiet_hours", push
        assert push["decision"]["local"]["en"] == "6 Jan 2026, 08:00"
        assert push["whenDue"]["action"] == "send" and push["goesAt"] == "2026-01-06T01:00:00Z"
        assert push["message"]["title"] == "Found something you like? 👀" and push["message"]["language"] == "en"

        history = await client.post("/v1/config/flows/late_tip/preview", headers=ADMIN,
                                    json={"userId": "ann", "flow": LATE_TIP})
        assert history.json()["enters"] is False, "no tip_due in the user's history"
        assert history.json()["reason"].startswith("starts on tip_due: none that matches")

        assert_error(await client.get("/v1/config/flows/late_tip", headers=ADMIN), 404)  # the draft is not saved
        assert (await client.get("/v1/messages?userId=ann", headers=ADMIN)).json()["messages"] == []


async def test_saved_flow_and_refusals(engine: Engine) -> None:
    _users(engine)
    async with api_client(engine) as client:
        saved = (await client.post("/v1/config/flows/cart_abandonment/preview", headers=ADMIN,
                                   json={"userId": "ann"})).json()
        assert saved["enters"] is False and saved["reason"] == "not in segment cart_abandoners now", saved
        assert [s["name"] for s in saved["steps"]] == ["nudge_push", "wait_2", "coupon", "coupon_email", "wait_5",
                                                       "last_chance_modal"]
        assert saved["steps"][0]["decision"]["action"] == "send" and saved["steps"][0]["channel"] == "push"

        assert_error(await client.post("/v1/config/flows/nope/preview", headers=ADMIN, json={"userId": "ann"}),
                     404, "not_found")
        assert_error(await client.post("/v1/config/flows/cart_abandonment/preview", headers=ADMIN,
                                       json={"userId": "ghost"}), 404, "not_found")
        bad = {**LATE_TIP, "steps": [{"name": "x", "send": {"channel": "fax", "template": "no_such_template"}}],
               "reentry": "sometimes"}
        refused = assert_error(await client.post("/v1/config/flows/late_tip/preview", headers=ADMIN,
                                                 json={"userId": "ann", "flow": bad}), 422, "invalid_config")
        assert len(refused["details"]) >= 2, refused
        assert all(set(d) == {"path", "message"} for d in refused["details"])
        assert_error(await client.post("/v1/config/flows/late_tip/preview", headers=ADMIN, json={}), 400)
        assert_error(await client.post("/v1/config/flows/late_tip/preview", headers=ADMIN,
                                       json={"userId": "ann", "flow": "steps: []"}), 400)
        assert_error(await client.post("/v1/config/flows/cart_abandonment/preview", headers=WRITE,
                                       json={"userId": "ann"}), 403)
