"""A realistic, seeded stream of Segment-style calls following the tracking plan (CONTRACT.md 4).

A Thai second-hand marketplace: buyers open the app, browse and search, fill carts, buy; sellers list and reprice;
a few visitors browse anonymously and identify later (their history is merged). Every call carries a
``messageId``, a ``timestamp`` at or before the engine's clock and the ``context`` an SDK would send.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from growthengine.clock import RealClock

BENCH_START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
"""The engine's (manual) clock during the benchmark; every event is at or before it."""

PROVINCES = ("กรุงเทพมหานคร", "เชียงใหม่", "ขอนแก่น", "ภูเก็ต", "ชลบุรี", "นครราชสีมา", "สงขลา", "อุดรธานี")
CATEGORIES = ("แฟชั่น", "มือถือและแท็บเล็ต", "ของแต่งบ้าน", "กล้องถ่ายรูป", "หนังสือ", "กีฬา", "ของสะสม")
TITLES = (
    "กระเป๋าผ้าฝ้ายทอมือ", "รองเท้าผ้าใบมือสอง สภาพดี", "ไอโฟน 13 128GB สีฟ้า", "โต๊ะไม้สักเก่า",
    "กล้องฟิล์ม Olympus OM-1", "เสื้อยืดวินเทจ 90s", "หม้อหุงข้าวไฟฟ้า", "จักรยานเสือภูเขา 🚲",
)
FIRST_NAMES = ("สมชาย", "สมหญิง", "นก", "มานี", "ปิติ", "ชูใจ", "วีระ", "อรุณี")
LAST_NAMES = ("ใจดี", "รักไทย", "ศรีสุข", "แก้วมณี", "ทองดี")

# Call kinds and their shares of the stream (they add up to 1).
_MIX: tuple[tuple[str, float], ...] = (
    ("item_viewed", 0.34), ("app_opened", 0.16), ("identify", 0.08), ("location_searched", 0.06),
    ("add_to_cart", 0.07), ("remove_from_cart", 0.02), ("favorite_added", 0.04), ("favorite_removed", 0.01),
    ("purchase", 0.03), ("message_opened", 0.03), ("message_clicked", 0.01), ("screen", 0.06),
    ("page", 0.03), ("listing_created", 0.02), ("listing_price_changed", 0.01), ("item_sold", 0.01),
    ("seller_registered", 0.005), ("unsubscribed", 0.005), ("anonymous", 0.01),
)

_LIBRARIES = ({"name": "analytics-android", "version": "4.11.3"}, {"name": "analytics-ios", "version": "4.1.8"},
              {"name": "analytics.js", "version": "5.2.0"})


@dataclass(frozen=True, slots=True)
class Workload:
    """The calls of one benchmark run, in the order they are sent, and the engine clock they are sent at."""

    calls: list[dict[str, Any]]
    now: dt.datetime
    users: int
    seed: int

    def batches(self, size: int = 100) -> list[list[dict[str, Any]]]:
        return [self.calls[i : i + size] for i in range(0, len(self.calls), size)]


class _Generator:
    def __init__(self, users: int, seed: int, now: dt.datetime, span: dt.timedelta) -> None:
        self.rng = random.Random(seed)
        self.users = users
        self.now = now
        self.span = span
        self.kinds = [k for k, _ in _MIX]
        self.weights = [w for _, w in _MIX]
        self.anonymous: list[str] = []

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def user(self) -> str:
        # Skewed activity: a few users are very active, most come by now and then.
        return f"u{int(self.users * self.rng.random() ** 2.5):06d}"

    def listing(self) -> str:
        return f"L{self.rng.randrange(1, 500_000):07d}"

    def price(self) -> float:
        return round(self.rng.choice((49, 99, 150, 290, 450, 990, 1500, 3900, 12900)) * self.rng.uniform(0.8, 1.2))

    def properties(self, kind: str) -> dict[str, Any]:
        r = self.rng
        if kind == "item_viewed":
            return {"listing_id": self.listing(), "category": r.choice(CATEGORIES), "price": self.price(),
                    "province": r.choice(PROVINCES)}
        if kind == "location_searched":
            return {"province": r.choice(PROVINCES)}
        if kind == "add_to_cart":
            return {"listing_id": self.listing(), "title": r.choice(TITLES), "price": self.price(),
                    "image_url": f"https://img.example.co.th/{r.getrandbits(40):x}.jpg", "stock": r.randint(1, 9)}
        if kind in ("remove_from_cart", "favorite_added", "favorite_removed"):
            return {"listing_id": self.listing()}
        if kind == "purchase":
            items = [self.listing() for _ in range(r.randint(1, 3))]
            return {"order_id": f"O{r.getrandbits(40):x}", "amount": self.price() * len(items), "listing_ids": items}
        if kind == "item_sold":
            return {"listing_id": self.listing(), "amount": self.price()}
        if kind == "listing_created":
            return {"listing_id": self.listing(), "title": r.choice(TITLES), "price": self.price(),
                    "category": r.choice(CATEGORIES), "image_url": f"https://img.example.co.th/{r.getrandbits(40):x}.jpg"}
        if kind == "listing_price_changed":
            old = self.price()
            return {"listing_id": self.listing(), "old_price": old, "new_price": round(old * r.uniform(0.6, 0.98))}
        if kind in ("message_opened", "message_clicked"):
            return {"message_id": self.uuid()}
        if kind == "unsubscribed":
            return {"channel": r.choice(("push", "email", "sms"))}
        return {}

    def traits(self, user_id: str) -> dict[str, Any]:
        r = self.rng
        traits: dict[str, Any] = {
            "name": f"{r.choice(FIRST_NAMES)} {r.choice(LAST_NAMES)}",
            "email": f"{user_id}@example.co.th",
            "phone": f"+668{r.randrange(10_000_000, 99_999_999)}",
            "province": r.choice(PROVINCES),
            "language": "th" if r.random() < 0.85 else "en",
            "consent": {"push": r.random() < 0.7, "email": r.random() < 0.5, "sms": r.random() < 0.2,
                        "in_app": True, "ads": r.random() < 0.3},
        }
        if r.random() < 0.2:
            traits["is_seller"] = True
        if r.random() < 0.5:
            traits["push_token"] = f"fcm:{r.getrandbits(96):x}"
        return traits

    def call(self, index: int, count: int) -> dict[str, Any]:
        r = self.rng
        kind = r.choices(self.kinds, self.weights)[0]
        # Time moves forward through the stream, with the jitter of phones that send a little late.
        at = self.now - self.span + self.span * (index / count) - dt.timedelta(seconds=r.uniform(0, 90))
        call: dict[str, Any] = {
            "messageId": self.uuid(),
            "timestamp": at.isoformat(timespec="milliseconds"),
            "context": {"library": r.choice(_LIBRARIES), "locale": "th-TH", "ip": f"203.0.113.{r.randrange(256)}"},
        }
        if kind == "anonymous":
            if self.anonymous and r.random() < 0.3:
                # A visitor signs in: the identify carries both ids and merges their history.
                call.update(type="identify", userId=self.user(), anonymousId=self.anonymous.pop(),
                            traits={"language": "th"})
            else:
                anon = self.uuid()
                self.anonymous.append(anon)
                call.update(type="track", anonymousId=anon, event="item_viewed",
                            properties=self.properties("item_viewed"))
            return call
        user_id = self.user()
        call["userId"] = user_id
        if kind == "identify":
            call.update(type="identify", traits=self.traits(user_id))
        elif kind in ("screen", "page"):
            call.update(type=kind, name=r.choice(("home", "search", "listing", "cart", "profile")), properties={})
        else:
            call.update(type="track", event=kind, properties=self.properties(kind))
        return call


def stream_calls(events: int, *, users: int = 100_000, seed: int = 7, now: dt.datetime = BENCH_START,
                 span: dt.timedelta = dt.timedelta(minutes=15)) -> Iterator[dict[str, Any]]:
    """The calls of :func:`make_workload`, one at a time (for runs too big to hold in memory)."""
    gen = _Generator(users, seed, now, span)
    for i in range(events):
        yield gen.call(i, events)


def live_workload(events: int, *, users: int = 100_000, seed: int = 7,
                  progress: Callable[[int], None] | None = None) -> Workload:
    """:func:`make_workload` dated the 15 minutes before now, for an engine on the real clock: a live stream, whose
    segment entries start flows. Dated at ``BENCH_START`` instead, a real-clock engine found every time-based entry
    due at once and 11 months late (more than ``flow_entry_max_lag``), so it recorded them and started no flow."""
    return make_workload(events, users=users, seed=seed, now=RealClock().now(), progress=progress)


def make_workload(events: int, *, users: int = 100_000, seed: int = 7, now: dt.datetime = BENCH_START,
                  span: dt.timedelta = dt.timedelta(minutes=15),
                  progress: Callable[[int], None] | None = None) -> Workload:
    """``events`` calls from ``users`` users over the ``span`` before ``now``; the same seed gives the same calls."""
    gen = _Generator(users, seed, now, span)
    calls: list[dict[str, Any]] = []
    for i in range(events):
        calls.append(gen.call(i, events))
        if progress is not None and (i + 1) % 1000 == 0:
            progress(1000)
    if progress is not None and events % 1000:
        progress(events % 1000)
    return Workload(calls=calls, now=now, users=users, seed=seed)
