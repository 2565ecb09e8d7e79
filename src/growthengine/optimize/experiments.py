"""Experiments on a send step (SPEC 4.B "A/B test on 10 %, roll out the winner to 90 %"), and holdout uplift.

**Allocation.** A deterministic ``explore_share`` (10 %) of the audience, chosen by
:func:`growthengine.gate.bucketing.bucket`, is split evenly over the variants. In the default ``explore`` mode
everyone else gets the control (the first variant, normally the curated copy) until a verdict, then the winner. In
``thompson`` mode everyone else gets the variant with the highest draw from its Beta(1 + conversions, 1 + failures)
posterior (Thompson sampling: the likely better variant reaches most users before the verdict), the draw seeded from
the user, the experiment and the amount of evidence, so the same state gives the same answer. The even split of the
explored share keeps every variant sampled, so the test below keeps its power under Thompson sampling.

**The test: a mixture sequential probability ratio test (mSPRT)** for the difference of two proportions, the
always-valid test of Johari, Pekelis and Walsh ("Always valid inference", Operations Research 2022; Optimizely's
Stats Engine). With ``d`` the difference of the observed rates, ``V`` its variance under "no difference" (pooled
rate, ``p(1-p)(1/n1 + 1/n2)``) and a normal mixing distribution of variance ``tau**2`` over the true difference,

    Lambda = sqrt(V / (V + tau**2)) * exp(tau**2 * d**2 / (2 V (V + tau**2)))

is a (asymptotic) martingale under the null, so by Ville's inequality ``P(Lambda ever >= 1/alpha) <= alpha``: the
always-valid p-value ``min(1, 1/Lambda)`` may be checked after every batch, forever, without inflating false
winners. That is why: the engine looks at the data continuously and must stop as soon as the evidence holds, with no
fixed sample size to pre-register, and a plain z-test or a Bayesian "P(B > A) > 95 %" rule checked every batch
declares false winners in A/A tests far more often than 5 %. With ``k`` variants the level of each pair is
``alpha / (k(k-1)/2)`` (Bonferroni). A minimum sample per arm (``min_sends``) keeps the normal approximation honest.
``tau`` (default 0.02, two percentage points) is the size of effect a copy change typically has on open or click
rates; any ``tau`` keeps the error guarantee, it only moves where the test is most powerful. Record every send of a
variant, explored or not: assignment does not depend on outcomes, so the control's many exploited sends add power
without biasing the comparison.

**Verdicts.** ``winner``: an eligible variant whose rate beats every other eligible variant at that level.
``no_difference``: the always-valid confidence sequence of every pair lies within ``+-min_effect`` (the variants are
practically equal) or every arm reached ``max_sends``. Otherwise ``running``. A verdict is final: store it on the
state (:meth:`Experiment.conclude`) and :func:`assign` follows it.

**Guardrail.** The unsubscribe rate is tested with the same mSPRT (its own ``guardrail_tau``, level
``guardrail_alpha``; only once the variant has ``guardrail_min_events`` unsubscribes and both sides ``min_sends``
sends, because the normal approximation misleads on a handful of rare events): a variant significantly worse than
another is no longer eligible, neither explored nor rolled out. And a winner must be shown not to harm: the
always-valid upper bound of its unsubscribe excess over every other variant must be within ``guardrail_margin`` (a
non-inferiority check), so a harmful variant cannot win the race on conversions before its harm is significant.
When the guardrail leaves a single variant, that variant is the winner. The A/A false-winner rate is the sum of both
tests' errors (``alpha`` on conversions, ``guardrail_alpha`` on unsubscribes); ``growth bench quality`` measures it.

**Uplift** of a campaign over its holdout: Newcombe's hybrid score interval (method 10 of Newcombe 1998) for the
difference of two proportions, built from the two Wilson score intervals; it keeps close to its nominal coverage
for small counts and rates near 0, where the Wald interval fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from growthengine.gate.bucketing import bucket
from growthengine.optimize.proportions import (
    confidence_radius,
    msprt_p_value,
    wilson_interval,
)

Mode = Literal["explore", "thompson"]
Status = Literal["running", "winner", "no_difference"]
AssignReason = Literal["explore", "exploit", "winner", "thompson"]


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    mode: Mode = "explore"
    explore_share: float = 0.10
    metric: str = "opens"  # what counts as a conversion (opens, clicks, purchases): a label, the caller counts
    alpha: float = 0.05
    tau: float = 0.02  # mixing sd over the true difference of conversion rates (the effect size we expect)
    min_sends: int = 300
    max_sends: int = 100_000
    min_effect: float = 0.002
    guardrail_alpha: float = 0.02
    guardrail_tau: float = 0.005
    guardrail_margin: float = 0.005
    guardrail_min_events: int = 10  # unsubscribes of a variant before it can fail the guardrail

    def __post_init__(self) -> None:
        if self.mode not in ("explore", "thompson"):
            raise ValueError("mode must be explore or thompson")
        if not 0 < self.explore_share <= 1 or not 0 < self.alpha < 1 or not 0 < self.guardrail_alpha < 1:
            raise ValueError("explore_share must be in (0, 1]; alpha and guardrail_alpha in (0, 1)")
        if self.tau <= 0 or self.guardrail_tau <= 0 or self.min_sends < 1 or self.max_sends < self.min_sends:
            raise ValueError("tau must be positive and 1 <= min_sends <= max_sends")


@dataclass(slots=True)
class VariantStats:
    sends: int = 0
    conversions: int = 0
    unsubscribes: int = 0

    @property
    def rate(self) -> float:
        return self.conversions / self.sends if self.sends else 0.0

    @property
    def unsubscribe_rate(self) -> float:
        return self.unsubscribes / self.sends if self.sends else 0.0


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    winner: str | None
    p_value: float | None
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.status != "running"


@dataclass(frozen=True, slots=True)
class Assignment:
    variant: str
    reason: AssignReason
    inputs: dict[str, Any] = field(default_factory=dict)


class Experiment:
    """The state of one experiment: counts per variant, the configuration, and the verdict once there is one."""

    def __init__(self, key: str, variants: Sequence[str], *, config: ExperimentConfig | None = None,
                 counts: dict[str, VariantStats] | None = None, verdict: Verdict | None = None,
                 decided_at: str | None = None) -> None:
        if len(variants) < 2 or len(set(variants)) != len(variants):
            raise ValueError("an experiment needs at least two distinct variants")
        self.key = key
        self.config = config or ExperimentConfig()
        self.variants: dict[str, VariantStats] = {v: (counts or {}).get(v) or VariantStats() for v in variants}
        self.verdict = verdict
        self.decided_at = decided_at  # ISO instant of the final verdict (its evidence is in ``verdict.inputs``)

    @property
    def control(self) -> str:
        return next(iter(self.variants))

    def record(self, variant: str, *, sends: int = 0, conversions: int = 0, unsubscribes: int = 0) -> None:
        """Add outcomes of ``variant``'s sends (the caller decides what a conversion is: ``config.metric``)."""
        if variant not in self.variants:
            raise KeyError(f"experiment {self.key!r} has no variant {variant!r}")
        if min(sends, conversions, unsubscribes) < 0:
            raise ValueError("counts cannot be negative")
        s = self.variants[variant]
        s.sends += sends
        s.conversions += conversions
        s.unsubscribes += unsubscribes

    def conclude(self, verdict: Verdict, at: str | None = None) -> bool:
        """Keep a final verdict, decided at ``at`` (a running one is not kept). True when this one is kept."""
        if verdict.final and self.verdict is None:
            self.verdict = verdict
            self.decided_at = at
            return True
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1, "key": self.key, "config": asdict(self.config),
            "variants": {name: asdict(s) for name, s in self.variants.items()},
            "verdict": None if self.verdict is None else asdict(self.verdict),
            "decided_at": self.decided_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Experiment:
        variants = {name: VariantStats(**s) for name, s in data["variants"].items()}
        verdict = Verdict(**data["verdict"]) if data.get("verdict") else None
        return cls(data["key"], list(variants), config=ExperimentConfig(**data.get("config", {})), counts=variants,
                   verdict=verdict, decided_at=data.get("decided_at"))


# ---- the always-valid test ----------------------------------------------------------------------------------


def _pairs(k: int) -> int:
    return max(1, k * (k - 1) // 2)


def guardrail_failures(state: Experiment) -> dict[str, str]:
    """The variants whose unsubscribe rate is significantly worse than another's, each with why."""
    cfg = state.config
    level = cfg.guardrail_alpha / _pairs(len(state.variants))
    failed: dict[str, str] = {}
    for name, s in state.variants.items():
        if s.unsubscribes < cfg.guardrail_min_events or s.sends < cfg.min_sends:
            continue
        for other, o in state.variants.items():
            if other == name or o.sends < cfg.min_sends or s.unsubscribe_rate <= o.unsubscribe_rate:
                continue
            p = msprt_p_value(o.unsubscribes, o.sends, s.unsubscribes, s.sends, cfg.guardrail_tau)
            if p <= level:
                failed[name] = (f"unsubscribe rate {s.unsubscribe_rate:.2%} is significantly above {other}'s "
                                f"{o.unsubscribe_rate:.2%} (always-valid p={p:.3g} <= {level:.3g})")
                break
    return failed


def unsubscribe_excess_bound(state: Experiment, name: str, other: str) -> float:
    """An always-valid upper bound (level ``guardrail_alpha``) on how much ``name`` raises the unsubscribe rate
    over ``other``."""
    cfg = state.config
    s, o = state.variants[name], state.variants[other]
    radius = confidence_radius(o.unsubscribes, o.sends, s.unsubscribes, s.sends, cfg.guardrail_tau,
                               cfg.guardrail_alpha)
    return s.unsubscribe_rate - o.unsubscribe_rate + radius


def eligible_variants(state: Experiment) -> list[str]:
    """The variants still in play: those that did not fail the unsubscribe guardrail."""
    failed = guardrail_failures(state)
    return [name for name in state.variants if name not in failed]


def decide(state: Experiment) -> Verdict:
    """The verdict on the evidence so far (a stored final verdict stands)."""
    if state.verdict is not None and state.verdict.final:
        return state.verdict
    cfg = state.config
    failed = guardrail_failures(state)
    names = [n for n in state.variants if n not in failed]
    v = state.variants
    inputs: dict[str, Any] = {
        "test": "mSPRT", "alpha": cfg.alpha, "tau": cfg.tau, "metric": cfg.metric,
        "rates": {n: round(s.rate, 5) for n, s in v.items()}, "sends": {n: s.sends for n, s in v.items()},
        "unsubscribe_rates": {n: round(s.unsubscribe_rate, 5) for n, s in v.items()}, "guardrail_failed": failed,
    }
    short = [n for n in names if v[n].sends < cfg.min_sends]
    if short:
        return Verdict("running", None, None, f"collecting: {', '.join(short)} below {cfg.min_sends} sends", inputs)
    if len(names) == 1:
        return Verdict("winner", names[0], None, f"{names[0]} is the only variant that passed the unsubscribe "
                       f"guardrail ({'; '.join(f'{k}: {why}' for k, why in failed.items())})", inputs)
    level = cfg.alpha / _pairs(len(state.variants))
    leader = max(names, key=lambda n: v[n].rate)
    worst_p = 0.0
    for other in names:
        if other == leader:
            continue
        p = msprt_p_value(v[other].conversions, v[other].sends, v[leader].conversions, v[leader].sends, cfg.tau)
        worst_p = max(worst_p, p)
    inputs["level"] = level
    inputs["leader"] = leader
    harm = None
    if worst_p <= level:
        harm = max(unsubscribe_excess_bound(state, leader, o) for o in names if o != leader)
        inputs["unsubscribe_excess_bound"] = round(harm, 5)
        if harm <= cfg.guardrail_margin:
            return Verdict("winner", leader, worst_p,
                           f"{leader} converts at {v[leader].rate:.2%}, above every other variant (always-valid "
                           f"p={worst_p:.3g} <= {level:.3g}), and raises unsubscribes by at most {harm:.2%} "
                           f"(guardrail margin {cfg.guardrail_margin:.2%})", inputs)
    radius = max(confidence_radius(v[a].conversions, v[a].sends, v[b].conversions, v[b].sends, cfg.tau, level)
                 + abs(v[a].rate - v[b].rate) for i, a in enumerate(names) for b in names[i + 1:])
    inputs["largest_plausible_difference"] = round(radius, 5)
    if radius < cfg.min_effect:
        return Verdict("no_difference", None, worst_p, f"every difference is within +-{cfg.min_effect:.2%} "
                       f"(always-valid bound {radius:.3%}): the variants are practically equal", inputs)
    if all(v[n].sends >= cfg.max_sends for n in names):
        return Verdict("no_difference", None, worst_p, f"no significant difference after {cfg.max_sends} sends "
                       "per variant", inputs)
    if harm is not None:
        return Verdict("running", None, worst_p, f"{leader} converts significantly better (always-valid "
                       f"p={worst_p:.3g} <= {level:.3g}) but may still raise unsubscribes by up to {harm:.2%} "
                       f"(more than the {cfg.guardrail_margin:.2%} margin): collecting", inputs)
    return Verdict("running", None, worst_p, f"{leader} leads, not yet significant (always-valid p={worst_p:.3g}, "
                   f"needs <= {level:.3g})", inputs)


# ---- assignment ---------------------------------------------------------------------------------------------


def exploit_variant(state: Experiment, names: Sequence[str] | None = None) -> str:
    """What the unexplored audience gets before a verdict: the control, or while the control fails the guardrail,
    the eligible variant converting best so far."""
    names = list(names) if names is not None else eligible_variants(state)
    if state.control in names or not names:
        return state.control
    return max(names, key=lambda n: state.variants[n].rate)


def assign(user_id: str, experiment_key: str, state: Experiment) -> Assignment:
    """Which variant ``user_id`` gets, deterministically for the same state, and why."""
    cfg = state.config
    verdict = state.verdict
    if verdict is not None and verdict.final:
        if verdict.status == "winner" and verdict.winner in state.variants:
            return Assignment(verdict.winner, "winner", {"verdict": verdict.reason})
        return Assignment(state.control, "exploit", {"verdict": verdict.reason})
    names = eligible_variants(state)
    draw = bucket(experiment_key, user_id, ".explore")
    if draw < cfg.explore_share:
        pick = bucket(experiment_key, user_id, ".variant")
        chosen = names[min(int(pick * len(names)), len(names) - 1)]
        return Assignment(chosen, "explore", {"bucket": round(draw, 5), "explore_share": cfg.explore_share,
                                              "eligible": names})
    if cfg.mode == "thompson":
        total = sum(s.sends for s in state.variants.values())
        seed = int(bucket(experiment_key, user_id, f".thompson.{total}") * 2**53)
        rng = np.random.default_rng(seed)
        draws = {n: float(rng.beta(1 + state.variants[n].conversions,
                                   1 + state.variants[n].sends - state.variants[n].conversions)) for n in names}
        chosen = max(draws, key=lambda n: draws[n])
        return Assignment(chosen, "thompson", {"bucket": round(draw, 5), "draws": {n: round(d, 5)
                                                                                   for n, d in draws.items()}})
    return Assignment(exploit_variant(state, names), "exploit",
                      {"bucket": round(draw, 5), "explore_share": cfg.explore_share})


# ---- what the API shows -------------------------------------------------------------------------------------


def allocation(state: Experiment) -> dict[str, Any]:
    """Who gets what now: the explored share split evenly over the eligible variants, the rest to the control (or
    by Thompson sampling) before a verdict; everyone to the winner (or the control) after it."""
    cfg = state.config
    verdict = state.verdict
    if verdict is not None and verdict.final:
        target = verdict.winner if verdict.status == "winner" and verdict.winner in state.variants \
            else state.control
        return {"mode": cfg.mode, "explore_share": cfg.explore_share, "phase": "rolled_out",
                "shares": {n: 1.0 if n == target else 0.0 for n in state.variants},
                "rule": f"every recipient gets {target} ({verdict.status})"}
    names = eligible_variants(state)
    explore = {n: (cfg.explore_share / len(names) if n in names else 0.0) for n in state.variants}
    if cfg.mode == "thompson":
        return {"mode": cfg.mode, "explore_share": cfg.explore_share, "phase": "testing", "explore": explore,
                "shares": None,
                "rule": f"{cfg.explore_share:.0%} split evenly over {', '.join(names)}; the other "
                        f"{1 - cfg.explore_share:.0%} by Thompson sampling on the conversions so far"}
    rest = exploit_variant(state, names)
    shares = {n: round(explore[n] + (1 - cfg.explore_share if n == rest else 0.0), 6) for n in state.variants}
    return {"mode": cfg.mode, "explore_share": cfg.explore_share, "phase": "testing", "explore": explore,
            "shares": shares,
            "rule": f"{cfg.explore_share:.0%} split evenly over {', '.join(names)}; the other "
                    f"{1 - cfg.explore_share:.0%} get {rest} until the always-valid test decides"}


def differences(state: Experiment) -> list[dict[str, Any]]:
    """Each variant's conversion rate minus the control's, with the always-valid confidence sequence at the level
    the test uses (``alpha`` over the number of pairs), valid however often it is looked at."""
    cfg = state.config
    level = cfg.alpha / _pairs(len(state.variants))
    control = state.variants[state.control]
    out = []
    for name, s in state.variants.items():
        if name == state.control:
            continue
        diff = s.rate - control.rate
        radius = confidence_radius(control.conversions, control.sends, s.conversions, s.sends, cfg.tau, level)
        out.append({"variant": name, "versus": state.control, "difference": round(diff, 6),
                    "low": None if math.isinf(radius) else round(diff - radius, 6),
                    "high": None if math.isinf(radius) else round(diff + radius, 6),
                    "confidence": round(1 - level, 6), "method": "always-valid (mSPRT confidence sequence)"})
    return out


def summary(state: Experiment) -> dict[str, Any]:
    """One experiment as ``GET /v1/experiments`` shows it: variants with their counts and 95 % Wilson intervals,
    the allocation, the metric, the state, the always-valid interval of each difference to the control, and the
    verdict with its evidence (stored when final, else the current reading)."""
    verdict = state.verdict if state.verdict is not None else decide(state)
    failed = guardrail_failures(state)
    variants = []
    for name, s in state.variants.items():
        low, high = wilson_interval(s.conversions, s.sends) if s.sends else (None, None)
        variants.append({"name": name, "control": name == state.control, "sends": s.sends,
                         "conversions": s.conversions, "rate": round(s.rate, 6),
                         "interval": None if low is None else [round(low, 6), round(high or 0.0, 6)],
                         "unsubscribes": s.unsubscribes, "unsubscribe_rate": round(s.unsubscribe_rate, 6),
                         "eligible": name not in failed, **({"guardrail": failed[name]} if name in failed else {})})
    return {
        "key": state.key, "variants": variants, "allocation": allocation(state),
        "metric": state.config.metric, "state": "decided" if verdict.final else "running",
        "interval": differences(state),
        "verdict": {"status": verdict.status, "winner": verdict.winner, "p_value": verdict.p_value,
                    "reason": verdict.reason, "final": verdict.final, "decided_at": state.decided_at,
                    "evidence": verdict.inputs},
        "config": asdict(state.config),
    }
