"""Channel preference scores (SPEC 4.C): how much a user engages on each channel, and where a message should go.

**Evidence.** Per user and channel: sends (trials) and engagements (opens or clicks, as the caller counts them:
successes), both decayed with an exponential half-life so that a user who stopped reading email drifts down.

**Estimate.** A Beta-binomial model. The prior ``Beta(a, b)`` is the population's distribution of per-user rates on
that channel (fitted by the method of moments, :meth:`ChannelPopulation.fit`); the posterior after ``s`` decayed
successes in ``n`` decayed sends is ``Beta(a + s, b + n - s)``, so a thin history is shrunk toward the population.

**Score (0..1).** By default (``method="relative"``) the score is the posterior probability that the user's rate
is above the population's typical (median) user's rate on that channel: 0.5 with no evidence, near 1 for a user who
clearly engages more than most, near 0 for one who clearly engages less. Raw rates are not comparable across
channels (push opens run about 5 %, email opens about 20 %) and a raw push open rate above 0.8 almost never happens,
so SPEC 4.C's rule "email under 0.1 and push over 0.8" would never fire on raw rates; on the relative score it reads
"confidently among the least engaged by email and confidently among the more engaged by push". ``method="rate"``
gives the posterior mean rate instead. Both are in :meth:`ChannelScores.explain`.

**Routing.** :func:`route` applies :class:`ChannelRule` s: promotional (marketing) email goes to push instead when the
rule holds (switched, not dropped); transactional messages are never switched.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from scipy import special

CHANNELS = ("push", "email", "sms", "in_app")
# Population rates to start from before there is data (SPEC 6 benchmarks: push opens > 5 %, email opens > 20 %).
DEFAULT_RATES = {"push": 0.05, "email": 0.20, "sms": 0.02, "in_app": 0.30}
DEFAULT_STRENGTH = 10.0
ScoreMethod = Literal["relative", "rate"]


@dataclass(frozen=True, slots=True)
class BetaPrior:
    a: float
    b: float

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)

    @property
    def median(self) -> float:
        return float(special.betaincinv(self.a, self.b, 0.5))

    @classmethod
    def from_rate(cls, rate: float, strength: float = DEFAULT_STRENGTH) -> BetaPrior:
        rate = min(max(rate, 1e-4), 1 - 1e-4)
        return cls(rate * strength, (1 - rate) * strength)


class ChannelPopulation:
    """The prior per channel: what a user with no history looks like."""

    def __init__(self, priors: Mapping[str, BetaPrior] | None = None) -> None:
        self.priors = dict(priors or {})

    def prior(self, channel: str) -> BetaPrior:
        return self.priors.get(channel) or BetaPrior.from_rate(DEFAULT_RATES.get(channel, 0.1))

    @classmethod
    def fit(cls, evidence: Mapping[str, Iterable[tuple[float, float]]], *, min_strength: float = 2.0,
            max_strength: float = 500.0) -> ChannelPopulation:
        """Fit ``Beta(a, b)`` per channel from users' ``(successes, trials)`` by the method of moments.

        The mean is the pooled rate; the spread between users is Kleinman's estimate of the intra-class correlation
        ``rho`` (the binomial noise of each user's rate removed), and the prior strength ``a + b = (1 - rho) / rho``,
        kept within ``[min_strength, max_strength]``. Too little data: the default strength around the pooled rate.
        """
        priors: dict[str, BetaPrior] = {}
        for channel, pairs in evidence.items():
            users = [(min(s, n), n) for s, n in pairs if n > 0]
            total_n = sum(n for _, n in users)
            if not users or total_n <= 0:
                continue
            mean = sum(s for s, _ in users) / total_n
            strength = DEFAULT_STRENGTH
            k = len(users)
            spread = total_n - sum(n * n for _, n in users) / total_n - (k - 1)
            if k >= 10 and 0 < mean < 1 and spread > 0:
                dispersion = sum(n * (s / n - mean) ** 2 for s, n in users)
                rho = (dispersion - mean * (1 - mean) * (k - 1)) / (mean * (1 - mean) * spread)
                rho = min(max(rho, 1 / (1 + max_strength)), 1 / (1 + min_strength))
                strength = (1 - rho) / rho
            priors[channel] = BetaPrior.from_rate(mean, strength)
        return cls(priors)

    def to_json(self) -> dict[str, Any]:
        return {"v": 1, "priors": {c: [round(p.a, 6), round(p.b, 6)] for c, p in self.priors.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChannelPopulation:
        return cls({c: BetaPrior(float(a), float(b)) for c, (a, b) in (data.get("priors") or {}).items()})


@dataclass(slots=True)
class Evidence:
    successes: float = 0.0
    trials: float = 0.0


class ChannelScores:
    """One user's decayed engagement evidence per channel; serializable to a small JSON document."""

    def __init__(self, *, half_life: dt.timedelta = dt.timedelta(days=30), method: ScoreMethod = "relative",
                 evidence: Mapping[str, Evidence] | None = None, as_of: dt.datetime | None = None) -> None:
        if half_life <= dt.timedelta(0):
            raise ValueError("half_life must be positive")
        if method not in ("relative", "rate"):
            raise ValueError("method must be relative or rate")
        self.half_life = half_life
        self.method: ScoreMethod = method
        self.evidence: dict[str, Evidence] = {c: Evidence(e.successes, e.trials) for c, e in (evidence or {}).items()}
        self.as_of = _utc(as_of) if as_of is not None else None

    def observe(self, channel: str, at: dt.datetime, *, sends: float = 0, engagements: float = 0) -> None:
        """Add ``sends`` and ``engagements`` on ``channel`` that happened at ``at`` (late ones weigh as old as they
        are; everything is kept decayed to the latest instant seen)."""
        if sends < 0 or engagements < 0:
            raise ValueError("counts cannot be negative")
        at = _utc(at)
        if self.as_of is None or at > self.as_of:
            self._decay_to(at)
        assert self.as_of is not None
        weight = self._factor(self.as_of - at)
        ev = self.evidence.setdefault(channel, Evidence())
        ev.successes += engagements * weight
        ev.trials += sends * weight

    def evidence_at(self, channel: str, at: dt.datetime) -> Evidence:
        """Decayed evidence on ``channel`` as of ``at`` (engagements never count above sends)."""
        ev = self.evidence.get(channel)
        if ev is None or self.as_of is None:
            return Evidence()
        factor = self._factor(_utc(at) - self.as_of)
        trials = ev.trials * factor
        return Evidence(min(ev.successes * factor, trials), trials)

    def posterior(self, channel: str, population: ChannelPopulation, at: dt.datetime) -> BetaPrior:
        prior = population.prior(channel)
        ev = self.evidence_at(channel, at)
        return BetaPrior(prior.a + ev.successes, prior.b + ev.trials - ev.successes)

    def rate(self, channel: str, population: ChannelPopulation, at: dt.datetime) -> float:
        """The posterior mean engagement rate."""
        return self.posterior(channel, population, at).mean

    def score(self, channel: str, population: ChannelPopulation, at: dt.datetime) -> float:
        """The 0..1 score (see the module notes for the two methods)."""
        post = self.posterior(channel, population, at)
        if self.method == "rate":
            return post.mean
        typical = population.prior(channel).median
        return float(1.0 - special.betainc(post.a, post.b, typical))

    def scores(self, population: ChannelPopulation, at: dt.datetime,
               channels: Sequence[str] = CHANNELS) -> dict[str, float]:
        """One score per channel (``GET /v1/users/{id}/channel-scores``), rounded to 4 places."""
        names = list(dict.fromkeys([*channels, *self.evidence]))
        return {c: round(self.score(c, population, at), 4) for c in names}

    def explain(self, channel: str, population: ChannelPopulation, at: dt.datetime) -> dict[str, Any]:
        """The inputs of a score: evidence, prior, posterior mean rate and the score."""
        ev = self.evidence_at(channel, at)
        prior = population.prior(channel)
        return {"channel": channel, "method": self.method, "sends": round(ev.trials, 3),
                "engagements": round(ev.successes, 3), "prior": [round(prior.a, 4), round(prior.b, 4)],
                "population_median": round(prior.median, 5), "rate": round(self.rate(channel, population, at), 5),
                "score": round(self.score(channel, population, at), 4)}

    def _factor(self, age: dt.timedelta) -> float:
        return float(0.5 ** (max(age.total_seconds(), 0.0) / self.half_life.total_seconds()))

    def _decay_to(self, at: dt.datetime) -> None:
        if self.as_of is not None:
            factor = self._factor(at - self.as_of)
            for ev in self.evidence.values():
                ev.successes *= factor
                ev.trials *= factor
        self.as_of = at

    def to_json(self) -> dict[str, Any]:
        return {"v": 1, "as_of": self.as_of.isoformat() if self.as_of else None,
                "half_life_s": self.half_life.total_seconds(), "method": self.method,
                "e": {c: [round(e.successes, 5), round(e.trials, 5)] for c, e in self.evidence.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChannelScores:
        method = data.get("method", "relative")
        if method not in ("relative", "rate"):
            raise ValueError(f"unknown score method {method!r}")
        return cls(half_life=dt.timedelta(seconds=float(data.get("half_life_s", 30 * 86_400))), method=method,
                   evidence={c: Evidence(float(s), float(n)) for c, (s, n) in (data.get("e") or {}).items()},
                   as_of=dt.datetime.fromisoformat(data["as_of"]) if data.get("as_of") else None)


# ---- routing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelRule:
    """A marketing message planned on ``channel`` goes to ``switch_to`` when the user's ``channel`` score is below
    ``below`` and their ``switch_to`` score is above ``above``. The default is SPEC 4.C."""

    channel: str = "email"
    below: float = 0.1
    switch_to: str = "push"
    above: float = 0.8

    def describe(self) -> str:
        return f"{self.channel} score < {self.below:g} and {self.switch_to} score > {self.above:g}: " \
               f"switch to {self.switch_to}"

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> ChannelRule:
        """A rule from config: ``{if_email_below: 0.1, if_push_above: 0.8, action: switch_to_push}`` (SPEC 4.C's
        words), or the field names (``channel``, ``below``, ``switch_to``, ``above``)."""
        if "channel" in raw or "switch_to" in raw:
            return cls(str(raw.get("channel", "email")), float(raw.get("below", 0.1)),
                       str(raw.get("switch_to", "push")), float(raw.get("above", 0.8)))
        below = [(m.group(1), float(v)) for k, v in raw.items() if (m := re.fullmatch(r"if_(\w+)_below", k))]
        above = [(m.group(1), float(v)) for k, v in raw.items() if (m := re.fullmatch(r"if_(\w+)_above", k))]
        action = re.fullmatch(r"switch_to_(\w+)", str(raw.get("action", "")))
        if len(below) != 1 or len(above) != 1 or action is None or action.group(1) != above[0][0]:
            raise ValueError("a channel rule reads {if_<channel>_below: x, if_<other>_above: y, "
                             "action: switch_to_<other>}")
        return cls(below[0][0], below[0][1], above[0][0], above[0][1])


DEFAULT_RULES: tuple[ChannelRule, ...] = (ChannelRule(),)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The channel a message goes on. ``reason`` is ``channel_score`` when switched (the contract's reason code)."""

    channel: str
    switched: bool
    reason: str
    detail: str
    inputs: dict[str, Any] = field(default_factory=dict)


def route(channel: str, kind: str, scores: Mapping[str, float], rules: Sequence[ChannelRule] = DEFAULT_RULES, *,
          available: Collection[str] | None = None) -> RouteDecision:
    """Where a message planned on ``channel`` goes. ``available`` (if given) are the channels the user can receive
    (consent and an address): a switch to any other channel does not happen."""
    inputs: dict[str, Any] = {"planned": channel, "kind": kind,
                              "scores": {c: round(s, 4) for c, s in scores.items()}}
    if kind == "transactional":
        return RouteDecision(channel, False, "transactional", "transactional messages are never switched", inputs)
    applicable = [r for r in rules if r.channel == channel]
    if not applicable:
        return RouteDecision(channel, False, "no_rule", f"no channel rule for {channel}", inputs)
    notes: list[str] = []
    for rule in applicable:
        inputs.setdefault("rules", []).append(rule.describe())
        own, other = scores.get(rule.channel), scores.get(rule.switch_to)
        if own is None or other is None or math.isnan(own) or math.isnan(other):
            notes.append(f"no score for {rule.channel if own is None else rule.switch_to}")
            continue
        if not (own < rule.below and other > rule.above):
            notes.append(f"{rule.channel} {own:.2f} (switch below {rule.below:g}), {rule.switch_to} {other:.2f} "
                         f"(switch above {rule.above:g})")
            continue
        if available is not None and rule.switch_to not in available:
            notes.append(f"{rule.switch_to} would be preferred but the user cannot receive it")
            continue
        return RouteDecision(rule.switch_to, True, "channel_score",
                             f"{rule.channel} score {own:.2f} < {rule.below:g} and {rule.switch_to} score "
                             f"{other:.2f} > {rule.above:g}: sent by {rule.switch_to} instead", inputs)
    return RouteDecision(channel, False, "kept", "; ".join(notes), inputs)


def _utc(instant: dt.datetime) -> dt.datetime:
    if instant.tzinfo is None:
        raise ValueError("instants must carry a UTC offset")
    return instant.astimezone(dt.UTC)
