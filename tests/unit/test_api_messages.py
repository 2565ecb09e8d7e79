"""``GET /v1/messages`` over HTTP (CONTRACT.md 3.2): each filter, their combinations, cursor paging and the order
(oldest decided first), on a ledger written by the default flows on the manual clock."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from tests.conftest import START, make_engine
from tests.scenarios.story import Story
from tests.unit.api_client import ADMIN, WRITE, api_client, assert_error

pytestmark = pytest.mark.anyio

BKK = dt.timezone(dt.timedelta(hours=7))
ALL = {"push": True, "email": True, "in_app": True}

# What the story below writes, in the order the engine decided it: (userId, flow, channel, status, reason).
LEDGER = [
    ("u1", "weekly_digest", "email", "sent", "send_time"),        # Mon 09:00, booked for 18:00 (best time)
    ("u2", "weekly_digest", "email", "sent", "send_time"),
    ("u1", "cart_abandonment", "push", "sent", None),             # 10:00, T+1h
    ("u2", "cart_abandonment", "push", "suppressed", "consent"),  # 10:30, no push opt-in
    ("u1", "price_drop", "push", "suppressed", "frequency_cap"),  # 11:00, the day's push went at 10:00
    ("u2", "vip_treatment", "email", "sent", None),               # 12:00, high LTV
    ("u1", "cart_abandonment", "push", "scheduled", "quiet_hours"),  # 23:00, held for 08:00
]
FIELDS = ("userId", "flow", "channel", "status")


def write_ledger(engine: Engine, clock: ManualClock) -> None:
    story = Story(engine, clock)
    story.identify("u1", email="u1@example.test", push_token="t1", consent=ALL)
    story.identify("u2", email="u2@example.test", push_token="t2", consent={"email": True})
    story.track("seller", "listing_created", listing_id="L9", title="Leica M6", price=90000, category="cameras")
    story.track("u1", "favorite_added", listing_id="L9")
    story.track("u1", "add_to_cart", listing_id="L1", title="Fuji X100V", price=32000, stock=9)
    story.advance_to(dt.datetime(2026, 1, 5, 9, 30, tzinfo=BKK))
    story.track("u2", "add_to_cart", listing_id="L2", title="Nikon FM2", price=8500, stock=9)
    story.advance_to(dt.datetime(2026, 1, 5, 11, 0, tzinfo=BKK))
    story.track("seller", "listing_price_changed", listing_id="L9", old_price=90000, new_price=80000)
    story.advance_to(dt.datetime(2026, 1, 5, 12, 0, tzinfo=BKK))
    story.track("u2", "purchase", order_id="O1", amount=6000, listing_ids=["L7"])
    story.advance_to(dt.datetime(2026, 1, 5, 22, 0, tzinfo=BKK))
    story.track("u1", "add_to_cart", listing_id="L3", title="Canon AE-1", price=6000, stock=9)
    story.advance_to(dt.datetime(2026, 1, 5, 23, 30, tzinfo=BKK))


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One written ledger for the tests that only read it."""
    tmp = tmp_path_factory.mktemp("ledger")
    clock = ManualClock(START)
    engine = make_engine(f"sqlite:///{tmp / 'g.db'}", clock, tmp)
    write_ledger(engine, clock)
    yield engine
    engine.close()


def rows(page: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(*(m[f] for f in FIELDS), m.get("reason")) for m in page]


def expected(**filters: str) -> list[tuple[Any, ...]]:
    return [row for row in LEDGER if all(row[FIELDS.index(k)] == v for k, v in filters.items())]


async def all_pages(client: httpx.AsyncClient, limit: int, **filters: str) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, **filters, **({"cursor": cursor} if cursor else {})}
        answer = await client.get("/v1/messages", params=params, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"messages", "next"}
        pages.append(body["messages"])
        cursor = body["next"]
        if cursor is None:
            return pages
        assert len(pages) <= len(LEDGER), "the cursor never ends"


async def test_every_message_oldest_first(ledger: Engine) -> None:
    async with api_client(ledger) as client:
        answer = await client.get("/v1/messages", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert rows(body["messages"]) == LEDGER and body["next"] is None
    assert len({m["id"] for m in body["messages"]}) == len(LEDGER)
    held = body["messages"][-1]
    assert (held["scheduledAt"], held.get("sentAt")) == ("2026-01-06T01:00:00Z", None)


@pytest.mark.parametrize("filters", [
    {"userId": "u1"}, {"userId": "u2"}, {"userId": "nobody"},
    {"flow": "cart_abandonment"}, {"flow": "weekly_digest"}, {"flow": "seller_coach"},
    {"channel": "push"}, {"channel": "email"}, {"channel": "sms"},
    {"status": "sent"}, {"status": "suppressed"}, {"status": "scheduled"}, {"status": "opened"},
    {"userId": "u1", "channel": "push"}, {"flow": "cart_abandonment", "status": "sent"},
    {"userId": "u2", "flow": "weekly_digest", "channel": "email", "status": "sent"},
], ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
async def test_each_filter_and_their_combinations(ledger: Engine, filters: dict[str, str]) -> None:
    async with api_client(ledger) as client:
        answer = await client.get("/v1/messages", params=filters, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    assert rows(answer.json()["messages"]) == expected(**filters)
    assert answer.json()["next"] is None


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7, 8, 1000])
async def test_cursor_pages_cover_the_ledger_once_in_order(ledger: Engine, limit: int) -> None:
    async with api_client(ledger) as client:
        pages = await all_pages(client, limit)
    assert len(pages) == max(1, math.ceil(len(LEDGER) / limit)), "no empty page at the end"
    assert all(len(p) == limit for p in pages[:-1]) and 0 < len(pages[-1]) <= limit
    assert rows([m for p in pages for m in p]) == LEDGER


@pytest.mark.parametrize(("filters", "limit"), [({"userId": "u1"}, 2), ({"channel": "push"}, 1),
                                                ({"status": "sent"}, 3)])
async def test_a_cursor_keeps_its_filters(ledger: Engine, filters: dict[str, str], limit: int) -> None:
    async with api_client(ledger) as client:
        pages = await all_pages(client, limit, **filters)
    assert rows([m for p in pages for m in p]) == expected(**filters)
    assert len(pages) == math.ceil(len(expected(**filters)) / limit)


async def test_a_cursor_continues_after_the_last_message_it_saw(engine: Engine, clock: ManualClock) -> None:
    """A reader that keeps its cursor (the simulator's ApiMessageSource) gets what was decided after it read."""
    write_ledger(engine, clock)
    story = Story(engine, clock)
    async with api_client(engine) as client:
        first = (await client.get("/v1/messages", params={"limit": 6}, headers=ADMIN)).json()
        assert rows(first["messages"]) == LEDGER[:6] and first["next"] is not None
        story.track("u2", "add_to_cart", listing_id="L4", title="Pentax K1000", price=4000, stock=9)
        story.advance(hours=1)
        rest = (await client.get("/v1/messages", params={"limit": 6, "cursor": first["next"]},
                                 headers=ADMIN)).json()
    assert rows(rest["messages"]) == [LEDGER[6], ("u2", "cart_abandonment", "push", "suppressed", "consent")]
    assert rest["next"] is None


@pytest.mark.parametrize("params", [
    {"channel": "fax"}, {"status": "read"}, {"limit": "0"}, {"limit": "1001"}, {"limit": "ten"},
    {"cursor": "abc"}, {"cursor": "-1"}, {"cursor": "1" * 19}, {"userId": "u\x001"},
], ids=lambda p: ",".join(f"{k}={v!r}" for k, v in p.items()))
async def test_bad_parameters_are_400(engine: Engine, params: dict[str, str]) -> None:
    async with api_client(engine) as client:
        assert_error(await client.get("/v1/messages", params=params, headers=ADMIN), 400)


async def test_the_ledger_needs_the_admin_key(engine: Engine) -> None:
    async with api_client(engine) as client:
        assert_error(await client.get("/v1/messages"), 401)
        assert_error(await client.get("/v1/messages", headers=WRITE), 403, "forbidden")
