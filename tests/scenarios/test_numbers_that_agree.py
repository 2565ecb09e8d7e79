"""The dashboard, ``GET /v1/kpis`` and ``GET /v1/messages`` tell the same story (issue 12, "Numbers that agree"),
tried over HTTP as a new user would: each defect seen once is a story here.

On the manual clock, Monday 5 January 2026 09:00 in Bangkok.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from growthengine.analytics.definitions import RATES, definitions
from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.engine import Engine
from growthengine.settings import Settings
from tests.unit.api_client import ADMIN, ADMIN_KEY, WRITE, api_client

pytestmark = pytest.mark.anyio
BKK = dt.timezone(dt.timedelta(hours=7))
CONSENT = {"push": True, "email": True, "sms": True, "in_app": True, "ads": True}
_ids = itertools.count()


@pytest.fixture
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine) as client:
        await sign_in(client)
        yield client


async def sign_in(client: httpx.AsyncClient) -> None:
    response = await client.post("/dashboard/login", data={"key": ADMIN_KEY, "next": "/"})
    assert response.status_code == 303, response.text


async def send(client: httpx.AsyncClient, *calls: dict[str, Any]) -> None:
    items = [{**call, "messageId": f"n-{next(_ids)}"} for call in calls]
    response = await client.post("/v1/batch", json={"batch": items}, headers=WRITE)
    assert response.status_code == 200 and not response.json()["rejected"], response.text


async def shoppers(client: httpx.AsyncClient, *users: str) -> None:
    await send(client, *[{"type": "identify", "userId": u, "traits": {
        "email": f"{u}@example.test", "push_token": f"tok-{u}", "language": "th", "consent": CONSENT}}
        for u in users])


async def add_to_cart(client: httpx.AsyncClient, *users: str) -> None:
    await send(client, *[{"type": "track", "userId": u, "event": "add_to_cart", "properties": {
        "listing_id": f"L-{u}", "title": "กล้องฟิล์ม", "price": 4500, "stock": 2}} for u in users])


async def purchase(client: httpx.AsyncClient, user: str, amount: float, listing: str = "other") -> None:
    await send(client, {"type": "track", "userId": user, "event": "purchase",
                        "properties": {"order_id": f"o-{next(_ids)}", "amount": amount, "listing_ids": [listing]}})


async def advance_to(client: httpx.AsyncClient, instant: dt.datetime) -> None:
    response = await client.post("/v1/clock/advance", json={"to": instant.isoformat()}, headers=ADMIN)
    assert response.status_code == 200, response.text


async def kpis(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get("/v1/kpis", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed(client: httpx.AsyncClient, status: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/messages", params={"status": status, "limit": 1000}, headers=ADMIN)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["messages"]
    return found


async def page(client: httpx.AsyncClient, path: str, lang: str = "th") -> str:
    response = await client.get(path, params={"lang": lang})
    assert response.status_code == 200, response.text
    return response.text


def cell(text: str, count: str) -> str:
    found = re.search(rf'data-count="{count}">([^<]*)<', text)
    assert found is not None, count
    return found.group(1)


def card_value(text: str, metric: str) -> str:
    found = re.search(rf'data-metric="{metric}" data-value="([^"]*)"', text)
    assert found is not None, metric
    return found.group(1)


async def test_scheduled_and_held_on_the_dashboard_are_what_the_api_lists(http: httpx.AsyncClient) -> None:
    """It said "Scheduled/held 0" while the API listed 343 held messages: a push held for quiet hours is due
    tomorrow, outside a span that ends today. The figure is the messages waiting now, whatever their day."""
    await shoppers(http, "early", "late1", "late2", "late3")
    await advance_to(http, dt.datetime(2026, 1, 5, 20, 0, tzinfo=BKK))
    await add_to_cart(http, "early")
    await advance_to(http, dt.datetime(2026, 1, 5, 21, 30, tzinfo=BKK))
    await add_to_cart(http, "late1", "late2", "late3")
    await advance_to(http, dt.datetime(2026, 1, 5, 23, 0, tzinfo=BKK))

    held = await listed(http, "scheduled")
    assert sorted(m["userId"] for m in held) == ["late1", "late2", "late3"]
    assert {m["reason"] for m in held} == {"quiet_hours"}
    body = await kpis(http)
    assert body["now"]["scheduled"] == 3 and body["now"]["scheduled_by_reason"] == {"quiet_hours": 3}
    assert body["overall"]["sent"] == 1
    overview = await page(http, "/")
    assert cell(overview, "scheduled_now") == "3"
    # The explorer lists the same three, with the rule in Thai and the times in Bangkok time, not raw UTC.
    explorer = await page(http, "/dashboard/messages?status=scheduled")
    assert len(re.findall(r'data-status="scheduled"', explorer)) == 3
    assert "ช่วงเวลาห้ามรบกวน" in explorer and "2026-01-06 08:00 (UTC+0700)" in explorer
    assert "2026-01-06T01:00:00Z" not in explorer and "Asia/Bangkok" in explorer
    # Once they go out at 08:00, nothing waits any more.
    await advance_to(http, dt.datetime(2026, 1, 6, 8, 0, tzinfo=BKK))
    assert await listed(http, "scheduled") == []
    assert (await kpis(http))["now"]["scheduled"] == 0
    assert cell(await page(http, "/"), "scheduled_now") == "0"


async def test_delivered_and_opened_are_counted_separately(http: httpx.AsyncClient) -> None:
    """"Delivered" was always equal to "Opened". Delivered: the device or inbox has it; opened counts as delivered
    too (an open proves the arrival), so delivered >= opened, and they differ when an inbox has a message unread."""
    users = ("u1", "u2", "u3")
    await shoppers(http, *users)
    await add_to_cart(http, *users)
    await advance_to(http, dt.datetime(2026, 1, 7, 10, 0, tzinfo=BKK))  # past T+48h: the last-chance modal
    modals = [m for m in await listed(http, "sent") if m["channel"] == "in_app"]
    assert sorted(m["userId"] for m in modals) == list(users)
    for user in ("u1", "u2"):  # their app opens: the inbox has it (delivered)
        response = await http.get(f"/v1/users/{user}/inbox", headers=ADMIN)
        assert response.status_code == 200, response.text
    u2_modal = next(m for m in modals if m["userId"] == "u2")
    read = await http.post(f"/v1/users/u2/inbox/{u2_modal['id']}/read", headers=ADMIN)
    assert read.status_code == 200, read.text

    body = await kpis(http)
    [in_app] = [r for r in body["by_channel"] if r["channel"] == "in_app"]
    assert (in_app["sent"], in_app["delivered"], in_app["opened"]) == (3, 2, 1)
    assert in_app["confirmed_delivery_rate"] == pytest.approx(2 / 3)
    overall = body["overall"]
    assert overall["delivered"] == overall["opened"] + 1
    overview = await page(http, "/")
    assert cell(overview, "delivered") == str(overall["delivered"])
    assert cell(overview, "opened") == str(overall["opened"])
    assert float(card_value(overview, "confirmed_delivery_rate")) == pytest.approx(
        overall["delivered"] / overall["sent"])


async def test_a_purchase_is_attributed_once_to_the_last_touch(http: httpx.AsyncClient) -> None:
    """A purchase was counted as three conversions, one per message in the window. Now it is credited once, to the
    last message before it within the window, and the page says so."""
    await shoppers(http, "u1")
    await add_to_cart(http, "u1")
    await advance_to(http, dt.datetime(2026, 1, 6, 10, 0, tzinfo=BKK))  # the push (T+1h) and the email (T+24h)
    sent = await listed(http, "sent")
    assert sorted(m["step"] for m in sent) == ["coupon_email", "nudge_push"]
    await purchase(http, "u1", 1200, listing="another-listing")  # not the cart's item: the flow goes on

    body = await kpis(http)
    assert (body["overall"]["converted"], body["overall"]["purchases"]) == (1, 1)
    assert body["overall"]["revenue"] == 1200
    assert body["attribution"] == "last_touch"
    by_step = {r["step"]: r for r in body["by_step"]}
    assert (by_step["coupon_email"]["converted"], by_step["nudge_push"]["converted"]) == (1, 0)
    assert sum(r["converted"] for r in body["by_channel"]) == 1
    overview = await page(http, "/")
    assert cell(overview, "converted") == "1" and cell(overview, "purchases") == "1"
    assert "last touch" in html.unescape(re.search(r'id="attribution">([^<]*)<', overview).group(1))  # type: ignore[union-attr]
    english = await page(http, "/", lang="en")
    assert "credited once, to the last message before it (last touch)" in english


async def test_every_rate_is_defined_once_and_agrees_everywhere(http: httpx.AsyncClient) -> None:
    """A delivery rate of 100 % stood next to 30 delivered of 119 sent. Each rate has one definition, shown on the
    page in Thai and English, and the cards, the tables and the API compute it the same way from the same counts."""
    users = [f"u{i}" for i in range(6)]
    await shoppers(http, *users)
    await add_to_cart(http, *users)
    await advance_to(http, dt.datetime(2026, 1, 5, 10, 30, tzinfo=BKK))
    pushes = await listed(http, "sent")
    for message in pushes[:3]:
        await send(http, {"type": "track", "userId": message["userId"], "event": "message_opened",
                          "properties": {"message_id": message["id"]}})
    await send(http, {"type": "track", "userId": pushes[0]["userId"], "event": "message_clicked",
                      "properties": {"message_id": pushes[0]["id"]}})
    await purchase(http, pushes[0]["userId"], 900)

    body = await kpis(http)
    for row in [body["overall"], *body["by_flow"], *body["by_channel"], *body["by_step"], *body["by_day"]]:
        for rate in RATES:
            assert row[rate.name] == (pytest.approx(rate.of(row)) if rate.of(row) is not None else None), rate.name
    overall = body["overall"]
    assert overall["delivery_rate"] == 1.0 and overall["confirmed_delivery_rate"] == pytest.approx(
        overall["delivered"] / overall["sent"])
    overview = await page(http, "/")
    for metric in ("delivery_rate", "push_open_rate", "ctr", "conversion_rate", "unsubscribe_rate",
                   "confirmed_delivery_rate"):
        shown = card_value(overview, metric)
        assert (float(shown) if shown else None) == (pytest.approx(overall[metric]) if overall[metric] is not None
                                                     else None), metric
    thai, english = definitions("th"), definitions("en")
    assert body["definitions"] == {"th": thai, "en": english}
    text = html.unescape(overview)
    for rate in RATES:
        assert f'data-definition="{rate.name}">{rate.th}<' in text or rate.name not in (
            "delivery_rate", "confirmed_delivery_rate", "open_rate", "ctr", "conversion_rate", "unsubscribe_rate",
            "revenue_per_message"), rate.name
        assert f'title="{thai[rate.name]}"' in text or rate.name in (
            "push_open_rate", "email_open_rate", "control_conversion_rate"), rate.name
    english_page = html.unescape(await page(http, "/", lang="en"))
    assert f'data-definition="delivery_rate">{english["delivery_rate"]}<' in english_page
    # The same rate in the per-flow table is the API's.
    [cart] = [r for r in body["by_flow"] if r["flow"] == "cart_abandonment"]
    assert re.search(r'data-key="cart_abandonment" data-sent="6"', overview)
    assert cart["sent"] == 6 and cart["ctr"] == pytest.approx(1 / 6)
    row = re.search(r'<tr data-key="cart_abandonment" data-sent="6">(.*?)</tr>', overview, re.S)
    assert row is not None and '<td class="good">16.7 %</td>' in row.group(1)  # CTR against the one benchmark


async def test_segment_sizes_on_the_dashboard_are_fresh(http: httpx.AsyncClient) -> None:
    """Sizes were up to 10 minutes stale: the page showed a snapshot. Now it counts the memberships, as
    ``GET /v1/segments`` does, on every visit."""
    users = ("u1", "u2", "u3")
    await shoppers(http, *users)
    await add_to_cart(http, *users)
    await advance_to(http, dt.datetime(2026, 1, 5, 10, 1, tzinfo=BKK))

    def size(text: str) -> int:
        found = re.search(r'data-key="cart_abandoners">.*?data-size="(\d+)"', text, re.S)
        assert found is not None
        return int(found.group(1))

    assert size(await page(http, "/dashboard/segments")) == 3
    await purchase(http, "u1", 4500, listing="L-u1")  # leaves at once (realtime), the clock does not move
    api = {s["key"]: s["size"] for s in (await http.get("/v1/segments", headers=ADMIN)).json()}
    assert api["cart_abandoners"] == 2
    assert size(await page(http, "/dashboard/segments")) == 2


async def test_legends_labels_and_reasons_are_thai_on_the_thai_pages(http: httpx.AsyncClient) -> None:
    await shoppers(http, "u1")
    await send(http, {"type": "identify", "userId": "nobody", "traits": {"push_token": "t", "consent": {}}})
    await add_to_cart(http, "u1", "nobody")
    await advance_to(http, dt.datetime(2026, 1, 5, 10, 30, tzinfo=BKK))
    overview = await page(http, "/")
    chart = orjson.loads(html.unescape(re.search(r'class="chart" data-chart="([^"]*)"', overview).group(1)))  # type: ignore[union-attr]
    assert [trace["name"] for trace in chart["data"]] == ["ส่งออก", "เปิด", "คลิก", "ซื้อ"]
    assert "ไม่ได้รับความยินยอม" in overview  # the consent rule, in Thai, beside its code
    assert re.search(r'data-key="push"[^>]*>\s*<td class="text">พุช</td>', overview)
    explorer = await page(http, "/dashboard/messages")
    assert "การตลาด" in explorer and "พุช" in explorer
    flows = await page(http, "/dashboard/flows")
    assert "รอ" in flows and ">wait<" not in flows
    flow_chart = orjson.loads(html.unescape(re.search(r'class="chart small" data-chart="([^"]*)"', flows).group(1)))  # type: ignore[union-attr]
    assert {trace["name"] for trace in flow_chart["data"]} == {"ตัดสินใจส่ง", "ส่งออก", "เปิด", "คลิก", "ซื้อ"}
    segments = await page(http, "/dashboard/segments")
    assert "ทันที" in segments and ">realtime<" not in segments
    english = await page(http, "/", lang="en")
    assert '"name":"sent"' not in english and "no consent" in english


@pytest.fixture
def controlled(tmp_path: Path, clock: ManualClock, sqlite_url: str) -> Engine:
    """Half the users in the global control group (held back on purpose), for a measurable uplift."""
    settings = Settings(db_url=sqlite_url, data_dir=tmp_path / "data", clock="manual", clock_start=clock.now(),
                        global_control_pct=50)
    return build_engine(settings, clock=clock)


async def test_revenue_per_flow_and_its_uplift_over_the_control_group(controlled: Engine) -> None:
    users = [f"u{i}" for i in range(24)]
    async with api_client(controlled) as http:
        await sign_in(http)
        await shoppers(http, *users)
        await add_to_cart(http, *users)
        await advance_to(http, dt.datetime(2026, 1, 5, 10, 1, tzinfo=BKK))
        pushes = {m["userId"]: m for m in await listed(http, "sent") if m["step"] == "nudge_push"}
        held = {m["userId"]: m for m in await listed(http, "suppressed") if m["reason"] == "holdout"}
        assert len(pushes) >= 4 and len(held) >= 4, (len(pushes), len(held))
        treated_amounts = {u: 1000.0 + 100 * i for i, u in enumerate(sorted(pushes)[:4])}
        control_amounts = {u: 500.0 for u in sorted(held)[:1]}
        for user, amount in {**treated_amounts, **control_amounts}.items():
            await purchase(http, user, amount)
        body = await kpis(http)
        [cart] = [r for r in body["by_flow"] if r["flow"] == "cart_abandonment"]
        assert cart["revenue"] == sum(treated_amounts.values())
        assert cart["control_revenue"] == sum(control_amounts.values())
        uplift = cart["revenue_uplift"]
        expected = sum(treated_amounts.values()) / cart["sent"] - sum(control_amounts.values()) / cart["control"]
        assert uplift["value"] == pytest.approx(expected)
        assert uplift["low"] < uplift["value"] < uplift["high"]
        assert (uplift["treated"], uplift["control"]) == (cart["sent"], cart["control"])
        overview = await page(http, "/")
        assert re.search(rf'data-key="cart_abandonment".*?data-revenue="{cart["revenue"]}"', overview, re.S)
        assert 'id="revenue-uplift"' in overview
        assert "ยอดขายต่อข้อความของกลุ่มที่ได้รับ − ของกลุ่มควบคุม" in html.unescape(overview)
    controlled.close()
