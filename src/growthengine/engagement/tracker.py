"""Feeds the optimization models: sends (from the dispatcher) and engagement (opens, clicks, app opens, purchases).

* **Channel scores** (``optimize.channel_scores``): every send is a trial on its channel, remembered by message id;
  the first ``message_opened`` or ``message_clicked`` of that message is its success (once per message).
* **Send time** (``optimize.send_time``), one model per channel: every engagement signal is a moment the user was
  there, weighted by how much it says about that channel (:data:`MESSAGE_SIGNALS`, :data:`ACTIVITY_SIGNALS`): an
  open of a message counts fully on the message's channel and a quarter on the others; a click adds half; an app
  open counts half on push and in-app and a quarter on email and SMS; a purchase half on every channel. App opens
  and purchases do not depend on when we sent anything, so they keep the model honest where opens would only
  confirm our own past choices.
* **Experiments**: sends, first opens and unsubscribes of messages that carry an experiment.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from growthengine.clock import from_us
from growthengine.domain.events import Event
from growthengine.domain.messages import Message
from growthengine.domain.profiles import Profile
from growthengine.engagement.experiments import ExperimentBook
from growthengine.optimize.channel_scores import ChannelScores
from growthengine.optimize.send_time_docs import update_document
from growthengine.storage.unit_of_work import Tx

SCORES = "channels"
TIMED_CHANNELS = ("push", "email", "sms", "in_app")
ENGAGEMENT = ("message_opened", "message_clicked")
# Send-time weight of each signal: (on the message's own channel, on every other channel) for message engagement,
# per channel for the user's own activity.
MESSAGE_SIGNALS = {"message_opened": (1.0, 0.25), "message_clicked": (0.5, 0.0)}
ACTIVITY_SIGNALS: dict[str, dict[str, float]] = {
    "app_opened": {"push": 0.5, "in_app": 0.5, "email": 0.25, "sms": 0.25},
    "purchase": {"push": 0.5, "in_app": 0.5, "email": 0.5, "sms": 0.5},
}

Signal = tuple[str, str, dt.datetime, float]  # user, channel, when, weight


def send_time_kind(channel: str) -> str:
    return f"send_time:{channel}"


class EngagementTracker:
    """An ingestion listener and a dispatcher hook. Everything it learns, it learns in the same transaction."""

    def __init__(self, business_timezone: str = "Asia/Bangkok") -> None:
        self.business_timezone = business_timezone
        self.experiments = ExperimentBook()

    def on_sent(self, tx: Tx, sent: list[Message], now_us: int) -> None:
        """Messages went out: one more trial on their channel in each user's channel evidence."""
        by_user: dict[str, list[Message]] = defaultdict(list)
        for message in sent:
            by_user[message.user_id].append(message)
        if not by_user:
            return
        self.experiments.record(tx, sent, sends=1, at_us=now_us)
        docs = tx.user_models.get_many(list(by_user), SCORES)
        for user_id, messages in by_user.items():
            scores = ChannelScores.from_json(docs[user_id]) if user_id in docs else ChannelScores()
            for message in messages:  # as of when each went (timers ms apart are sent in one batch)
                scores.record_send(message.channel, from_us(message.sent_us or now_us), message.id)
            docs[user_id] = scores.to_json()
        tx.user_models.save_many(SCORES, {u: docs[u] for u in by_user}, now_us)

    def on_events(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        opened_ids = [str(e.properties.get("message_id")) for e in events
                      if e.name in ENGAGEMENT and e.properties.get("message_id")]
        found = tx.messages.get_many(opened_ids) if opened_ids else {}
        self._experiment_outcomes(tx, events, found)
        signals: list[Signal] = []
        engaged: list[tuple[str, str, str]] = []  # user, channel, message id
        for event in events:  # most events are neither: no instant is made for them
            if event.name in MESSAGE_SIGNALS:
                message = found.get(str(event.properties.get("message_id")))
                if message is None:
                    continue
                at = from_us(event.ts_us)
                engaged.append((message.user_id, message.channel, message.id))
                own, other = MESSAGE_SIGNALS[event.name]
                for channel in TIMED_CHANNELS:
                    weight = own if channel == message.channel else other
                    if weight > 0:
                        signals.append((message.user_id, channel, at, weight))
            elif event.name in ACTIVITY_SIGNALS:
                at = from_us(event.ts_us)
                signals.extend((event.user_id, channel, at, weight)
                               for channel, weight in ACTIVITY_SIGNALS[event.name].items())
        if engaged:
            self._score_engagements(tx, engaged, max(e.ts_us for e in events))
        if signals:
            self.learn(tx, signals, profiles, max(e.ts_us for e in events))

    def on_feedback_commands(self, tx: Tx, commands: list[Event]) -> None:
        """Opens and clicks reported by providers and inbox reads (``message_feedback`` commands) teach the models
        as the app's ``message_opened`` / ``message_clicked`` do."""
        engagement = {"opened": "message_opened", "clicked": "message_clicked"}
        events = [Event(c.user_id, engagement[str(c.properties.get("status"))], int(c.properties.get("at_us", c.ts_us)),
                        properties={"message_id": c.properties.get("message_id")})
                  for c in commands if c.properties.get("status") in engagement]
        profiles = tx.profiles.get_many(list({e.user_id for e in events})) if events else {}
        # An erased user's messages report under the erasure's token: there is nobody left to learn about.
        events = [e for e in events if e.user_id in profiles]
        if events:
            self.on_events(tx, events, profiles)

    def _score_engagements(self, tx: Tx, engaged: list[tuple[str, str, str]], now_us: int) -> None:
        docs = tx.user_models.get_many(list({u for u, _, _ in engaged}), SCORES)
        touched: dict[str, ChannelScores] = {}
        for user_id, channel, message_id in engaged:
            scores = touched.get(user_id)
            if scores is None:
                doc = docs.get(user_id)
                scores = ChannelScores.from_json(doc) if doc else ChannelScores()
            if scores.record_engagement(channel, message_id):
                touched[user_id] = scores
        tx.user_models.save_many(SCORES, {u: s.to_json() for u, s in touched.items()}, now_us)

    def _experiment_outcomes(self, tx: Tx, events: list[Event], found: dict[str, Message]) -> None:
        """A first open converts; an unsubscribe after a message counts against its variant (the guardrail)."""
        converted = []
        at_us = max((e.ts_us for e in events), default=None)
        for event in events:
            message = found.get(str(event.properties.get("message_id")))
            if event.name == "message_opened" and message is not None and "experiment" in message.data \
                    and not message.data.get("experiment_converted"):
                message.data["experiment_converted"] = True
                tx.messages.update(message.id, data=message.data)
                converted.append(message)
        self.experiments.record(tx, converted, conversions=1, at_us=at_us)
        unsub_ids = [str(e.properties["message_id"]) for e in events
                     if e.name == "unsubscribed" and e.properties.get("message_id")]
        if unsub_ids:
            self.experiments.record(tx, list(tx.messages.get_many(unsub_ids).values()), unsubscribes=1,
                                    at_us=at_us)

    def learn(self, tx: Tx, signals: list[Signal], profiles: dict[str, Profile], now_us: int) -> None:
        """Add engagement moments to the users' send-time models, one model per channel: every model the signals
        touch is read in one query and written in one statement, updated as its stored document
        (``optimize.send_time_docs``)."""
        now = from_us(now_us)
        grouped: dict[tuple[str, str], list[tuple[dt.datetime, float]]] = defaultdict(list)
        for user_id, channel, at, weight in signals:
            grouped[(user_id, send_time_kind(channel))].append((at, weight))
        docs = tx.user_models.get_kinds(list({u for u, _ in grouped}), list({k for _, k in grouped}))
        rows: list[tuple[str, str, dict[str, Any]]] = []
        for (user_id, kind), points in sorted(grouped.items()):
            doc = docs.get((user_id, kind))
            tz = self.business_timezone
            if doc is None:
                profile = profiles.get(user_id)
                tz = (profile.traits.get("timezone") if profile else None) or self.business_timezone
            latest = max(now, *(p for p, _ in points))
            rows.append((user_id, kind, update_document(doc, points, now=latest, tz=str(tz))))
        tx.user_models.save_rows(rows, now_us)

    def on_merge(self, tx: Tx, anonymous_key: str, user_id: str) -> None:
        """Models belong to identified users."""
