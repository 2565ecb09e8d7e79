"""The marketplace's state over simulated time, and the queue of events it has planned but not yet emitted.

Time is in microseconds since the epoch (as the engine keeps it). The marketplace never looks at a clock: the
driver tells it which hour to plan and up to when to hand over events.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from growthengine.clock import from_us, to_us
from growthengine.simulate.catalog import CATEGORIES, Catalog
from growthengine.simulate.population import CONSENT_CHANNELS, Population
from growthengine.simulate.sessions import plan_sessions
from growthengine.timefmt import format_instant

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
SECOND_US = 1_000_000
MAX_CART = 6

# A planned event: (time, sequence number, user id, event name or "identify", properties or traits).
SimEvent = tuple[int, int, str, str, dict[str, Any]]


@dataclass
class MarketStats:
    """What the marketplace has handed over so far."""

    events: Counter[str] = field(default_factory=Counter)
    purchases: int = 0
    gmv: float = 0.0
    message_purchases: int = 0
    message_gmv: float = 0.0
    messages_received: int = 0
    messages_opened: int = 0
    messages_clicked: int = 0
    unsubscribes: int = 0
    orders: list[tuple[str, int, float]] = field(default_factory=list)  # (user id, at_us, amount) of each purchase


class Marketplace:
    """Users, listings, carts and favorites, evolving hour by hour from one seed."""

    def __init__(self, users: int, seed: int, start: dt.datetime) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.start_us = to_us(start)
        self.population = Population(self.rng, users, start)
        self.catalog = Catalog()
        self.carts: dict[int, list[int]] = {}
        self.favorites: dict[int, list[int]] = {}
        self.consent = self.population.consent.copy()
        self.sells = self.population.is_seller.copy()  # lists regularly
        self.registered = self.population.is_seller.copy()  # has told the app it sells
        self.first_listing_due: dict[int, int] = {}
        self.stats = MarketStats()
        self._queue: list[SimEvent] = []
        self._seq = 0
        self._orders = 0

    # -- the queue -------------------------------------------------------------------------------------------

    def emit(self, at_us: int, user: int, name: str, properties: dict[str, Any]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at_us, self._seq, self.population.ids[user], name, properties))

    def drain(self, until_us: int) -> list[SimEvent]:
        """Every planned event before ``until_us``, in time order; counted in :attr:`stats` as handed over."""
        out: list[SimEvent] = []
        queue = self._queue
        while queue and queue[0][0] < until_us:
            event = heapq.heappop(queue)
            out.append(event)
            self.stats.events[event[3]] += 1
            if event[3] == "purchase":
                self.stats.purchases += 1
                self.stats.gmv += float(event[4]["amount"])
                self.stats.orders.append((event[2], event[0], float(event[4]["amount"])))
        return out

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- the opening ------------------------------------------------------------------------------------------

    def open(self, *, identify: bool = True) -> None:
        """Users identify themselves with their traits, and the sellers' catalog so far is put on sale."""
        pop, at = self.population, self.start_us
        if identify:
            for i in range(pop.n):
                self.emit(at, i, "identify", pop.traits(i))
        counts = np.where(pop.power_seller, self.rng.integers(25, 70, size=pop.n),
                          self.rng.poisson(3.0, size=pop.n)) * pop.is_seller
        for i in np.flatnonzero(counts).tolist():
            for _ in range(int(counts[i])):
                self._create_listing(i, at + SECOND_US)

    # -- one hour of organic life ----------------------------------------------------------------------------

    def alive(self, at_us: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Users who have not gone quiet by ``at_us``."""
        result: np.ndarray[Any, np.dtype[np.bool_]] = (
            self.start_us + self.population.churn_day * DAY_US > at_us
        )
        return result

    def plan_hour(self, hour_us: int) -> None:
        """Plan everything that happens in ``[hour_us, hour_us + 1h)``: sessions and sellers' work."""
        alive = self.alive(hour_us)
        self._plan_sellers(hour_us, alive)
        plan_sessions(self, hour_us, alive)

    def _plan_sellers(self, hour_us: int, alive: np.ndarray[Any, np.dtype[np.bool_]]) -> None:
        pop, rng = self.population, self.rng
        end_us = hour_us + HOUR_US
        seller_us = self.start_us + pop.seller_day * DAY_US
        joining = np.flatnonzero((seller_us >= hour_us) & (seller_us < end_us) & alive & ~self.registered)
        for i in joining.tolist():
            at = int(seller_us[i])
            self.registered[i] = True
            self.emit(at, i, "identify", {"is_seller": True})
            self.emit(at + SECOND_US, i, "seller_registered", {})
            if not pop.never_lists[i]:
                self.first_listing_due[i] = at + int(pop.first_listing_days[i] * DAY_US)
        for seller, due in list(self.first_listing_due.items()):
            if due < end_us:
                del self.first_listing_due[seller]
                self.sells[seller] = True
                self._create_listing(seller, max(due, hour_us))
        listings = rng.poisson(pop.listing_rate / 24.0 * (self.sells & alive))
        for i in np.flatnonzero(listings).tolist():
            for _ in range(int(listings[i])):
                self._create_listing(i, hour_us + int(rng.integers(HOUR_US)))
        self._plan_price_changes(hour_us)

    def _create_listing(self, seller: int, at_us: int) -> None:
        pop, rng = self.population, self.rng
        affinity = pop.category_affinity[seller]
        category = int(np.argmax(affinity)) if rng.random() < 0.7 else int(rng.choice(len(CATEGORIES), p=affinity))
        index = self.catalog.create(rng, seller, category, int(pop.province[seller]), at_us)
        self.emit(at_us, seller, "listing_created", self.catalog.listing_properties(index))

    def _plan_price_changes(self, hour_us: int) -> None:
        rng, catalog = self.rng, self.catalog
        active = catalog.active
        changes = int(rng.poisson(len(active) * 0.03 / 24.0))
        for _ in range(changes):
            index = active.pick(float(rng.random()))
            if index is None or catalog.created_us[index] > hour_us - DAY_US:
                continue
            old = catalog.price[index]
            roll = rng.random()
            factor = (1 - rng.uniform(0.12, 0.35)) if roll < 0.4 else (
                (1 - rng.uniform(0.03, 0.09)) if roll < 0.75 else 1 + rng.uniform(0.05, 0.10))
            new = catalog.reprice(index, old * factor)
            if new != old:
                self.emit(hour_us + int(rng.integers(HOUR_US)), catalog.seller[index], "listing_price_changed",
                          {"listing_id": catalog.ids[index], "old_price": old, "new_price": new})

    # -- what users do ----------------------------------------------------------------------------------------

    def buy(self, user: int, listings: list[int], at_us: int, *, from_message: bool = False) -> bool:
        """Check out ``listings`` (those still for sale and not the buyer's own); True if an order was placed."""
        catalog = self.catalog
        bought = [i for i in dict.fromkeys(listings) if catalog.seller[i] != user and catalog.sell(i)]
        if not bought:
            return False
        self._orders += 1
        amount = sum(catalog.price[i] for i in bought)
        self.emit(at_us, user, "purchase", {"order_id": f"O{self.seed}-{self._orders:07d}", "amount": amount,
                                             "listing_ids": [catalog.ids[i] for i in bought]})
        for i in bought:
            self.emit(at_us + SECOND_US, catalog.seller[i], "item_sold",
                      {"listing_id": catalog.ids[i], "amount": catalog.price[i]})
        cart = self.carts.get(user)
        if cart:
            self.carts[user] = [i for i in cart if i not in bought]
        if from_message:
            self.stats.message_purchases += 1
            self.stats.message_gmv += amount
        return True

    def add_to_cart(self, user: int, listing: int, at_us: int) -> bool:
        catalog = self.catalog
        cart = self.carts.setdefault(user, [])
        if listing in cart or not catalog.available(listing) or catalog.seller[listing] == user:
            return False
        if len(cart) >= MAX_CART:
            oldest = cart.pop(0)
            self.emit(at_us - SECOND_US, user, "remove_from_cart", {"listing_id": catalog.ids[oldest]})
        cart.append(listing)
        self.emit(at_us, user, "add_to_cart", catalog.cart_properties(listing))
        return True

    def remove_from_cart(self, user: int, listing: int, at_us: int) -> None:
        cart = self.carts.get(user)
        if cart and listing in cart:
            cart.remove(listing)
            self.emit(at_us, user, "remove_from_cart", {"listing_id": self.catalog.ids[listing]})

    def favorite(self, user: int, listing: int, at_us: int) -> None:
        favorites = self.favorites.setdefault(user, [])
        if listing in favorites:
            return
        favorites.append(listing)
        self.emit(at_us, user, "favorite_added", {"listing_id": self.catalog.ids[listing]})
        if len(favorites) > 12:
            dropped = favorites.pop(0)
            self.emit(at_us + SECOND_US, user, "favorite_removed", {"listing_id": self.catalog.ids[dropped]})

    def unsubscribe(self, user: int, channel: str, at_us: int) -> None:
        k = CONSENT_CHANNELS.index(channel)
        if self.consent[user, k]:
            self.consent[user, k] = False
            self.stats.unsubscribes += 1
            self.emit(at_us, user, "unsubscribed", {"channel": channel})


def to_call(event: SimEvent, *, prefix: str, timestamp: bool = True) -> dict[str, Any]:
    """The Segment-spec call for one planned event (what ``POST /v1/batch`` and ``Engine.ingest`` take)."""
    at_us, seq, uid, name, properties = event
    call: dict[str, Any]
    if name == "identify":
        call = {"type": "identify", "userId": uid, "traits": properties}
    else:
        call = {"type": "track", "userId": uid, "event": name, "properties": properties}
    call["messageId"] = f"{prefix}-{seq}"
    if timestamp:
        call["timestamp"] = format_instant(from_us(at_us))
    return call
