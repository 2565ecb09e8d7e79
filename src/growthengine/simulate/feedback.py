"""The feedback loop: the messages the engine sends, and how the simulated users answer them.

This is the one place that connects the simulator to the engine's messages. A :class:`MessageSource` hands over
the messages sent since it was last asked; :func:`respond` makes their users open, click, buy or unsubscribe
according to their latent responsiveness (``message_opened`` / ``message_clicked`` carry the ``message_id``).

:class:`EngineMessageSource` reads an engine's send ledger in process (batch runs); :class:`ApiMessageSource`
reads ``GET /v1/messages`` (CONTRACT.md 3.2) of a running engine (live mode); :class:`NoMessages` sends nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import numpy as np

from growthengine.clock import from_us, to_us
from growthengine.domain.messages import Message
from growthengine.engine import Engine
from growthengine.simulate.marketplace import HOUR_US, SECOND_US, Marketplace
from growthengine.simulate.population import MESSAGE_CHANNELS
from growthengine.timefmt import TimeFormatError, parse_instant

log = logging.getLogger(__name__)

# How long after a message reaches an attentive user it is opened (mean), and how quickly attention fades
# hour by hour: a push at 03:00 is seen in the morning, an email can wait for the evening.
_LATENCY_US = {"push": 8 * 60 * SECOND_US, "sms": 5 * 60 * SECOND_US, "email": 90 * 60 * SECOND_US,
               "in_app": 30 * 60 * SECOND_US}
_DECAY = {"push": 0.55, "sms": 0.6, "email": 0.85, "in_app": 0.9}
_TIME_SENSITIVE = {"push": 0.6, "sms": 0.6, "email": 0.2, "in_app": 0.2}
_HORIZON_HOURS = 48
_QUIET_FACTOR = 0.3  # users who have gone quiet still glance at some messages, but buy nothing


@dataclass(frozen=True, slots=True)
class SimMessage:
    """A message the engine sent to a simulated user."""

    id: str
    user_id: str
    channel: str
    flow: str
    sent_at: dt.datetime
    listing_id: str | None = None
    kind: str = "marketing"


class MessageSource(Protocol):
    """Where the simulator learns which messages the engine has sent."""

    def new_messages(self) -> list[SimMessage]:
        """Messages sent since the last call (each message once)."""
        ...


class NoMessages:
    """The engine sends nothing (yet): the simulated users get no messages to answer."""

    def new_messages(self) -> list[SimMessage]:
        return []


_ANSWERABLE = {"sent", "delivered", "opened", "clicked"}


class EngineMessageSource:
    """Reads the engine's send ledger in process (the batch driver): each message once, when it has gone out.

    Messages come in the order they were decided; one held back (``scheduled``, say for quiet hours) is
    remembered and handed over once it has been sent.
    """

    def __init__(self, engine: Engine, *, page_size: int = 1000) -> None:
        self._engine = engine
        self._page_size = page_size
        self._after: int | None = None
        self._held: set[str] = set()

    def new_messages(self) -> list[SimMessage]:
        out: list[SimMessage] = []
        while True:
            page = self._engine.messages(after_seq=self._after, limit=self._page_size)
            for message in page:
                self._after = message.seq
                if message.status == "scheduled":
                    self._held.add(message.id)
                elif message.status in _ANSWERABLE:
                    out.append(_from_ledger(message))
            if len(page) < self._page_size:
                break
        if self._held:
            with self._engine.store.transaction() as tx:
                current = tx.messages.get_many(sorted(self._held))
            for mid, message in current.items():
                if message.status != "scheduled":
                    self._held.discard(mid)
                    if message.status in _ANSWERABLE:
                        out.append(_from_ledger(message))
        return out


def _from_ledger(message: Message) -> SimMessage:
    entity = message.data.get("entity")
    return SimMessage(id=message.id, user_id=message.user_id, channel=message.channel, flow=message.flow,
                      sent_at=from_us(message.sent_us if message.sent_us is not None else message.updated_us),
                      listing_id=entity if isinstance(entity, str) else None, kind=message.kind)


class ApiMessageSource:
    """Reads a running engine's ``GET /v1/messages`` page by page, remembering where it stopped."""

    def __init__(self, client: httpx.Client, *, page_size: int = 500, max_pages: int = 20) -> None:
        self._client = client
        self._page_size = page_size
        self._max_pages = max_pages
        self._cursor: str | None = None
        self._seen: set[str] = set()
        self._missing_logged = False

    def new_messages(self) -> list[SimMessage]:
        out: list[SimMessage] = []
        cursor, settled = self._cursor, True
        for _ in range(self._max_pages):
            params: dict[str, Any] = {"limit": self._page_size}
            if cursor is not None:
                params["cursor"] = cursor
            response = self._client.get("/v1/messages", params=params)
            if response.status_code != 200:
                if not self._missing_logged:
                    log.info("simulator: GET /v1/messages answered %d; users answer no messages", response.status_code)
                    self._missing_logged = True
                return out
            page = response.json()
            for raw in page.get("messages") or []:
                message = _parse_message(raw)
                if message is None or message.id in self._seen:
                    continue
                if raw.get("status") == "scheduled":
                    settled = False  # come back to this page once it has gone out
                    continue
                self._seen.add(message.id)
                if raw.get("status") in _ANSWERABLE:
                    out.append(message)
            following = page.get("next")
            if following is None:
                break
            cursor = following
            if settled:
                self._cursor = cursor
        return out


def _parse_message(raw: Any) -> SimMessage | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("userId"), str):
        return None
    try:
        sent_at = parse_instant(raw.get("sentAt") or raw.get("scheduledAt"), field="sentAt")
    except TimeFormatError:
        return None
    data: dict[str, Any] = raw["data"] if isinstance(raw.get("data"), dict) else {}
    listing = raw.get("listingId") or data.get("listing_id")
    return SimMessage(id=raw["id"], user_id=raw["userId"], channel=str(raw.get("channel")),
                      flow=str(raw.get("flow")), sent_at=sent_at,
                      listing_id=listing if isinstance(listing, str) else None,
                      kind=str(raw.get("kind") or "marketing"))


def respond(market: Marketplace, messages: list[SimMessage], now_us: int, *, at_sent_time: bool = True) -> None:
    """Plan how each user answers each message; answers happen at or after ``now_us``.

    With ``at_sent_time`` the message is taken to arrive when it was sent (the batch driver, whose clock is the
    engine's); without it, at ``now_us`` (the live driver, whose simulated time runs ahead of the engine's).
    """
    pop, rng, catalog = market.population, market.rng, market.catalog
    listing_index = {lid: i for i, lid in enumerate(catalog.ids)} if any(m.listing_id for m in messages) else {}
    for message in messages:
        user = pop.index_of(message.user_id)
        if user is None or message.channel not in MESSAGE_CHANNELS:
            continue
        market.stats.messages_received += 1
        k = MESSAGE_CHANNELS.index(message.channel)
        arrived = to_us(message.sent_at) if at_sent_time else now_us
        quiet = not bool(market.alive(arrived)[user])
        hours = (int(pop.hour_of_week(arrived)[user]) + np.arange(_HORIZON_HOURS)) % 168
        activity = pop.active_hours[user, hours]
        attention = activity[0] / pop.active_hours[user].max()
        sensitivity = _TIME_SENSITIVE[message.channel]
        p_open = pop.open_prob[user, k] * (1 - sensitivity + sensitivity * attention)
        if quiet:
            p_open *= _QUIET_FACTOR
        if rng.random() >= p_open:
            continue
        weights = activity * _DECAY[message.channel] ** np.arange(_HORIZON_HOURS)
        hour = int(rng.choice(_HORIZON_HOURS, p=weights / weights.sum()))
        opened = max(arrived + hour * HOUR_US + int(rng.exponential(_LATENCY_US[message.channel])), now_us)
        market.emit(opened, user, "message_opened", {"message_id": message.id})
        market.stats.messages_opened += 1
        if message.kind == "marketing" and rng.random() < pop.unsubscribe_prob[user]:
            market.unsubscribe(user, message.channel, opened + 30 * SECOND_US)
            continue
        if rng.random() >= pop.click_prob[user, k]:
            continue
        clicked = opened + int(rng.uniform(5, 60) * SECOND_US)
        market.emit(clicked, user, "message_clicked", {"message_id": message.id})
        market.emit(clicked + SECOND_US, user, "app_opened", {})
        market.stats.messages_clicked += 1
        target = listing_index.get(message.listing_id) if message.listing_id else None
        if target is not None:
            market.emit(clicked + 3 * SECOND_US, user, "item_viewed", catalog.view_properties(target))
        p_buy = pop.persuadability[user] * (1.0 + 0.5 * pop.price_sensitivity[user] * (message.flow == "price_drop"))
        if quiet or rng.random() >= p_buy:
            continue
        wanted = [target] if target is not None and catalog.available(target) else []
        wanted = wanted or list(market.carts.get(user) or []) or list(market.favorites.get(user) or [])[-1:]
        if wanted:
            market.buy(user, wanted, clicked + int(rng.uniform(1, 20) * 60 * SECOND_US), from_message=True)
