"""Feeds the optimization models: sends (from the dispatcher) and engagement (opens, clicks, app opens)."""

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
from growthengine.optimize.send_time import SendTimeModel
from growthengine.storage.unit_of_work import Tx

SCORES = "channels"
ENGAGEMENT = {"message_opened": 1.0, "message_clicked": 1.5}
APP_OPEN_WEIGHT = 0.5
TIMED_CHANNELS = ("push", "email", "sms", "in_app")


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
        self.experiments.record(tx, sent, sends=1)
        docs = tx.user_models.get_many(list(by_user), SCORES)
        at = from_us(now_us)
        for user_id, messages in by_user.items():
            scores = ChannelScores.from_json(docs[user_id]) if user_id in docs else ChannelScores()
            for message in messages:
                scores.observe(message.channel, at, sends=1)
            docs[user_id] = scores.to_json()
        tx.user_models.save_many(SCORES, {u: docs[u] for u in by_user}, now_us)

    def on_events(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        engagements: list[tuple[str, str, dt.datetime, float]] = []  # user, channel, when, weight
        opened_ids = [str(e.properties.get("message_id")) for e in events
                      if e.name in ENGAGEMENT and e.properties.get("message_id")]
        found = tx.messages.get_many(opened_ids) if opened_ids else {}
        channels = {mid: m.channel for mid, m in found.items()}
        self._experiment_outcomes(tx, events, found)
        for event in events:
            at = from_us(event.ts_us)
            if event.name in ENGAGEMENT:
                channel = channels.get(str(event.properties.get("message_id")))
                if channel is not None:
                    engagements.append((event.user_id, channel, at, ENGAGEMENT[event.name]))
            elif event.name == "app_opened":
                engagements.append((event.user_id, "push", at, APP_OPEN_WEIGHT))
                engagements.append((event.user_id, "in_app", at, APP_OPEN_WEIGHT))
        if engagements:
            self.learn(tx, engagements, profiles, max(e.ts_us for e in events))

    def _experiment_outcomes(self, tx: Tx, events: list[Event], found: dict[str, Message]) -> None:
        """A first open converts; an unsubscribe after a message counts against its variant (the guardrail)."""
        converted = []
        for event in events:
            message = found.get(str(event.properties.get("message_id")))
            if event.name == "message_opened" and message is not None and "experiment" in message.data \
                    and not message.data.get("experiment_converted"):
                message.data["experiment_converted"] = True
                tx.messages.update(message.id, data=message.data)
                converted.append(message)
        self.experiments.record(tx, converted, conversions=1)
        unsub_ids = [str(e.properties["message_id"]) for e in events
                     if e.name == "unsubscribed" and e.properties.get("message_id")]
        if unsub_ids:
            self.experiments.record(tx, list(tx.messages.get_many(unsub_ids).values()), unsubscribes=1)

    def learn(self, tx: Tx, engagements: list[tuple[str, str, dt.datetime, float]],
              profiles: dict[str, Profile], now_us: int) -> None:
        now = from_us(now_us)
        users = list({u for u, _, _, _ in engagements})
        scores_docs = tx.user_models.get_many(users, SCORES)
        touched_scores: dict[str, dict[str, Any]] = {}
        by_kind: dict[str, list[tuple[str, dt.datetime, float]]] = defaultdict(list)
        for user_id, channel, at, weight in engagements:
            by_kind[send_time_kind(channel)].append((user_id, at, weight))
            if weight >= 1.0:  # a message was opened or clicked: a success on its channel
                scores = ChannelScores.from_json(touched_scores.get(user_id) or scores_docs.get(user_id) or
                                                 ChannelScores().to_json())
                scores.observe(channel, at, engagements=1)
                touched_scores[user_id] = scores.to_json()
        tx.user_models.save_many(SCORES, touched_scores, now_us)
        for kind, items in by_kind.items():
            docs = tx.user_models.get_many([u for u, _, _ in items], kind)
            grouped: dict[str, list[tuple[dt.datetime, float]]] = defaultdict(list)
            for user_id, at, weight in items:
                grouped[user_id].append((at, weight))
            saved: dict[str, dict[str, Any]] = {}
            for user_id, points in grouped.items():
                profile = profiles.get(user_id)
                tz = (profile.traits.get("timezone") if profile else None) or self.business_timezone
                model = SendTimeModel.from_json(docs[user_id]) if user_id in docs else SendTimeModel(tz)
                model.update(points, now=max(now, *(p for p, _ in points)))
                saved[user_id] = model.to_json()
            tx.user_models.save_many(kind, saved, now_us)

    def on_merge(self, tx: Tx, anonymous_key: str, user_id: str) -> None:
        """Models belong to identified users."""
