"""Reads what a batch's send decision needs, in a few queries whatever the batch's size: one per frequency cap
(what the users were already sent), one for the channel scores, one per channel for the send-time models.

Several workers may send to the same user at once (PostgreSQL): the capped users' profile rows are locked before
their history is read, so that each worker counts what the others already sent. SQLite has one writer anyway.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from growthengine.clock import from_us
from growthengine.engagement.tracker import SCORES, send_time_kind
from growthengine.gate.batch_decision import window_start
from growthengine.gate.history import Candidate, CapKey, History, Policy, Sent
from growthengine.optimize.channel_scores import ChannelPopulation, ChannelScores
from growthengine.optimize.send_time import SendTimeModel
from growthengine.optimize.send_time_population import PopulationSendTime

if TYPE_CHECKING:
    import datetime as dt

    from growthengine.storage.unit_of_work import Tx

class Models(Protocol):
    """The optimizer's shared priors (``engagement.service.Optimizer``)."""

    population: ChannelPopulation

    def send_time_population(self, tx: Tx, channel: str, now: dt.datetime) -> PopulationSendTime: ...


def load_history(tx: Tx, candidates: Sequence[Candidate], policy: Policy, now_us: int, *,
                 models: Models | None = None) -> History:
    """The history of the candidates' users as of ``now_us``; channel scores and send-time models only with
    ``models`` (and when the policy routes or times messages)."""
    sent = _cap_history(tx, candidates, policy, now_us)
    scores: dict[str, dict[str, float]] = {}
    timed: dict[tuple[str, str], SendTimeModel] = {}
    populations: dict[str, PopulationSendTime] = {}
    if models is not None:
        live = [c for c in candidates if not c.release]
        if policy.route:
            scores = _channel_scores(tx, [c for c in live if policy.routable(c.message)], models, now_us)
        if policy.send_time:
            timed, populations = _send_time(tx, [c for c in live if c.best_within_us], models, now_us)
    return History(now_us=now_us, sent=sent, channel_scores=scores, send_time_models=timed,
                   send_time_population=populations)


def _cap_history(tx: Tx, candidates: Sequence[Candidate], policy: Policy, now_us: int) -> dict[CapKey, list[Sent]]:
    caps = policy.rules.caps
    found: dict[CapKey, list[Sent]] = {}
    # Each cap's candidates: those of its kind that may go on its channel (planned, or switched to), in one pass.
    per_cap: list[list[Candidate]] = [[] for _ in caps]
    for candidate in candidates if caps else ():
        message = candidate.message
        routable = policy.routable(message)
        for capped, cap in zip(per_cap, caps, strict=True):
            if cap.kind == message.kind and (cap.channel == message.channel or cap.channel in routable):
                capped.append(candidate)
    capped_users = sorted({c.message.user_id for capped in per_cap for c in capped})
    if not capped_users:
        return found
    tx.profiles.lock(capped_users)
    for cap, capped in zip(caps, per_cap, strict=True):
        if not capped:
            continue
        users = sorted({c.message.user_id for c in capped})
        first_us = min(c.instant(now_us) for c in capped)  # the earliest instant decided (timers ms apart)
        earliest = min(window_start(cap, first_us, tz) for tz in {policy.tz(c.traits) for c in capped})
        for user_id, sent_us, mid in tx.messages.sent_times(users, cap.channel, cap.kind, earliest):
            found.setdefault((user_id, cap.channel, cap.kind), []).append((sent_us, mid))
    return found


def _channel_scores(tx: Tx, candidates: Sequence[Candidate], models: Models,
                    now_us: int) -> dict[str, dict[str, float]]:
    if not candidates:
        return {}
    docs = tx.user_models.get_many(sorted({c.message.user_id for c in candidates}), SCORES)
    instants = {c.message.user_id: c.instant(now_us) for c in candidates}  # each user's scores as of its instant
    return {user_id: ChannelScores.from_json(doc).scores(models.population, from_us(instants.get(user_id, now_us)))
            for user_id, doc in docs.items()}


def _send_time(tx: Tx, candidates: Sequence[Candidate], models: Models, now_us: int
               ) -> tuple[dict[tuple[str, str], SendTimeModel], dict[str, PopulationSendTime]]:
    by_channel: dict[str, set[str]] = defaultdict(set)
    for candidate in candidates:
        by_channel[candidate.message.channel].add(candidate.message.user_id)
    found: dict[tuple[str, str], SendTimeModel] = {}
    populations: dict[str, PopulationSendTime] = {}
    now = from_us(now_us)
    for channel, users in sorted(by_channel.items()):
        for user_id, doc in tx.user_models.get_many(sorted(users), send_time_kind(channel)).items():
            if doc:
                found[(user_id, channel)] = SendTimeModel.from_json(doc)
        populations[channel] = models.send_time_population(tx, channel, now)
    return found, populations
