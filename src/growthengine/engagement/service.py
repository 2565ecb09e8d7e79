"""Answers from the optimization models: the best send time, the channel scores, the channel a message takes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from growthengine.clock import from_us
from growthengine.domain.messages import Message
from growthengine.engagement.tracker import SCORES, send_time_kind
from growthengine.gate.history import SEND_TIME_QUIET
from growthengine.optimize.channel_scores import CHANNELS, ChannelPopulation, ChannelScores
from growthengine.optimize.send_time import SendTimeChoice, SendTimeModel
from growthengine.optimize.send_time_population import PopulationSendTime
from growthengine.storage.unit_of_work import Tx

QUIET = SEND_TIME_QUIET
POPULATION_KEY = "population:send_time:"
POPULATION_SAMPLE = 5_000  # users' models the population's hour-of-week pattern is refitted from
POPULATION_REFIT = dt.timedelta(days=1)
POPULATION_MIN_USERS = 30  # fewer users with a history: the built-in pattern


class Optimizer:
    def __init__(self, business_timezone: str = "Asia/Bangkok") -> None:
        self.business_timezone = business_timezone
        self.population = ChannelPopulation()
        self._send_time_population: dict[str, tuple[dt.datetime, PopulationSendTime]] = {}

    def send_time_population(self, tx: Tx, channel: str, now: dt.datetime) -> PopulationSendTime:
        """The prior every user's send-time profile is shrunk toward, per channel: refitted from the users' own
        models once a day (business time; kept in the engine state so every process shares it), the built-in
        evening-peaked pattern until enough users have a history."""
        cached = self._send_time_population.get(channel)
        if cached is not None and now - cached[0] < POPULATION_REFIT:
            return cached[1]
        doc = tx.state.get(POPULATION_KEY + channel)
        fitted_at = dt.datetime.fromisoformat(doc["fitted_at"]) if isinstance(doc, dict) else None
        if doc is not None and fitted_at is not None and dt.timedelta(0) <= now - fitted_at < POPULATION_REFIT:
            population = PopulationSendTime.from_json(doc)
        else:
            models = [SendTimeModel.from_json(d) for d in tx.user_models.sample(send_time_kind(channel),
                                                                                  POPULATION_SAMPLE)]
            population = PopulationSendTime.from_models(models)
            if population.users < POPULATION_MIN_USERS:
                population = PopulationSendTime()
            fitted_at = now
            tx.state.put(POPULATION_KEY + channel, {**population.to_json(), "fitted_at": now.isoformat()})
        self._send_time_population[channel] = (fitted_at, population)
        return population

    def tz(self, traits: dict[str, Any]) -> str:
        tz = traits.get("timezone")
        return tz if isinstance(tz, str) and tz else self.business_timezone

    def send_time(self, tx: Tx, user_id: str, traits: dict[str, Any], channel: str, after: dt.datetime,
                  within: dt.timedelta = dt.timedelta(hours=24)) -> SendTimeChoice:
        doc = tx.user_models.get_many([user_id], send_time_kind(channel)).get(user_id)
        tz = self.tz(traits)
        model = SendTimeModel.from_json(doc) if doc else SendTimeModel(tz)
        population = self.send_time_population(tx, channel, after)
        return model.best_time(after, within, tz, QUIET.get(channel), population=population,
                               explore_key=f"{user_id}:{channel}:{int(after.timestamp())}")

    def channel_scores(self, tx: Tx, user_id: str, now_us: int) -> dict[str, float]:
        doc = tx.user_models.get_many([user_id], SCORES).get(user_id)
        scores = ChannelScores.from_json(doc) if doc else ChannelScores()
        found = scores.scores(self.population, from_us(now_us))
        return {c: found.get(c, 0.0) for c in (*CHANNELS, "ads") if c in found or c != "ads"}


def switch(message: Message, channel: str, detail: str, inputs: dict[str, Any]) -> None:
    """Send ``message`` on ``channel`` instead: with the copy of its counterpart template when the runner rendered
    one (``data["counterpart"]``), else the subject as the title and the text cut to fit."""
    counterpart = message.data.get("counterpart")
    data = {k: v for k, v in message.data.items() if k != "counterpart"}
    data.update({"planned_channel": message.channel, "route": detail, "route_inputs": inputs})
    if isinstance(counterpart, dict) and counterpart.get("channel") == channel:
        data.update({"planned_template": data.get("template"), "template": counterpart["template"]})
        message.title = counterpart.get("title")
        message.body = str(counterpart.get("body") or "")
        message.image_url = counterpart.get("image_url") or message.image_url
    else:
        message.title = message.title or message.subject
        message.body = _short(message.body)
    message.subject = None
    message.html = None
    message.data = data
    message.channel = channel
    message.reason = "channel_score"


def _short(text: str, limit: int = 178) -> str:
    """An email's text made fit for a push: its first lines, cut at a word."""
    flat = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return flat if len(flat) <= limit else flat[:limit - 1].rsplit(" ", 1)[0] + "…"
