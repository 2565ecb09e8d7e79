"""Simulated ground truth for the optimization layer: worlds whose right answers are known.

``growth bench quality`` and the unit tests measure the optimizers against these:

* :func:`make_send_time_truth`: users with a true open probability for a send at each hour of the week (one or two
  daily peaks, a floor, for some a later weekend routine) and an engagement history drawn from the same routine
  (app opens, opens and clicks; a share of noise at random hours). The true best hour is known per user.
* :class:`ArmTruth` and :func:`simulate_experiment`: variants with known conversion and unsubscribe rates, run
  through the experiment as the engine would (audience in batches, exploration share, verdict after each batch).
* :func:`draw_uplift`: a treated and a control group with known rates, hence a known true uplift.

Everything takes a ``numpy.random.Generator`` or a seed; nothing reads the clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from growthengine.optimize.experiments import (
    Experiment,
    ExperimentConfig,
    Verdict,
    decide,
    eligible_variants,
    exploit_variant,
)
from growthengine.optimize.send_time import DEFAULT_TZ, resolve_zone
from growthengine.optimize.send_time_population import HOURS_PER_WEEK

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Daily routines: (name, share of users, peak hour, spread of the peak between users).
ARCHETYPES: tuple[tuple[str, float, float, float], ...] = (
    ("commute", 0.22, 8.0, 0.6),
    ("lunch", 0.16, 12.5, 0.5),
    ("afternoon", 0.12, 15.5, 1.0),
    ("evening", 0.35, 19.5, 1.0),
    ("night", 0.15, 22.5, 0.7),
)


@dataclass(frozen=True)
class SendTimeTruth:
    """``open_prob[u, b]``: the chance user ``u`` opens a message sent at the start of local hour of week ``b``."""

    tz: str
    now: dt.datetime
    user_ids: list[str]
    archetypes: list[str]
    open_prob: FloatArray
    histories: list[list[tuple[dt.datetime, float]]]

    def best_allowed_hour(self, user: int, day: int, allowed: Sequence[int]) -> int:
        """The true best hour of week on ``day`` (0 = Monday) among the ``allowed`` local hours of day."""
        bins = [day * 24 + h for h in allowed]
        return bins[int(np.argmax(self.open_prob[user, bins]))]


def _bump(hours: FloatArray, center: float | FloatArray, width: float | FloatArray) -> FloatArray:
    gap = np.abs(hours - center) % 24
    gap = np.minimum(gap, 24 - gap)
    return np.asarray(np.exp(-0.5 * (gap / width) ** 2), dtype=np.float64)


def make_send_time_truth(n_users: int, *, seed: int, now: dt.datetime, weeks: int = 8, tz: str = DEFAULT_TZ,
                         mean_events: float = 28.0, noise_share: float = 0.15) -> SendTimeTruth:
    """``n_users`` users with known routines and ``weeks`` of engagement history ending at ``now``.

    History sizes are negative-binomial around ``mean_events`` (many thin histories, some long ones);
    ``noise_share`` of a user's events fall at uniformly random hours.
    """
    rng = np.random.default_rng(seed)
    zone, tz = resolve_zone(tz)
    shares = np.array([a[1] for a in ARCHETYPES])
    kinds = rng.choice(len(ARCHETYPES), size=n_users, p=shares / shares.sum())
    mid_hours = np.arange(24, dtype=np.float64) + 0.5
    open_prob = np.zeros((n_users, HOURS_PER_WEEK))
    density = np.zeros((n_users, HOURS_PER_WEEK))
    for u in range(n_users):
        _, _, center, spread = ARCHETYPES[kinds[u]]
        c1 = center + rng.normal(0, spread)
        w1 = rng.uniform(0.8, 2.0)
        second = rng.random() < 0.5
        c2 = ARCHETYPES[rng.integers(len(ARCHETYPES))][2] + rng.normal(0, 1.0)
        a2 = rng.uniform(0.25, 0.6) if second else 0.0
        weekend_shift = rng.uniform(1.0, 3.0) if rng.random() < 0.4 else 0.0
        floor = rng.uniform(0.05, 0.25)
        peak_prob = rng.uniform(0.08, 0.35)
        for day in range(7):
            shift = weekend_shift if day >= 5 else 0.0
            shape = _bump(mid_hours, c1 + shift, w1) + a2 * _bump(mid_hours, c2 + shift, 1.5)
            shape = shape / shape.max()
            density[u, day * 24:(day + 1) * 24] = 0.03 + shape
            open_prob[u, day * 24:(day + 1) * 24] = peak_prob * (floor + (1 - floor) * shape)
    density /= density.sum(axis=1, keepdims=True)

    local_now = now.astimezone(zone)
    this_monday = dt.datetime.combine(local_now.date() - dt.timedelta(days=local_now.weekday()), dt.time(0),
                                      tzinfo=zone)
    sizes = rng.negative_binomial(1.5, 1.5 / (1.5 + mean_events), size=n_users)
    histories: list[list[tuple[dt.datetime, float]]] = []
    for u in range(n_users):
        n = int(sizes[u])
        noisy = rng.random(n) < noise_share
        bins = np.where(noisy, rng.integers(0, HOURS_PER_WEEK, n), rng.choice(HOURS_PER_WEEK, size=n, p=density[u]))
        week_back = rng.integers(1, weeks + 1, n)
        minutes = rng.uniform(0, 60, n)
        events: list[tuple[dt.datetime, float]] = []
        for b, w, m in zip(bins.tolist(), week_back.tolist(), minutes.tolist(), strict=True):
            local = this_monday - dt.timedelta(weeks=w) + dt.timedelta(hours=b, minutes=m)
            # wall-clock arithmetic in the zone, then to UTC (exact for zones without DST, such as Bangkok)
            events.append((local.astimezone(dt.UTC), 1.0))
        histories.append(events)
    return SendTimeTruth(tz=tz, now=now, user_ids=[f"u{u:05d}" for u in range(n_users)],
                         archetypes=[ARCHETYPES[k][0] for k in kinds], open_prob=open_prob, histories=histories)


def sample_routines(n: int, rng: np.random.Generator, *, noise_share: float = 0.15) -> tuple[FloatArray, FloatArray]:
    """``n`` routines drawn as :func:`make_send_time_truth` draws its users' (the same distributions, vectorized):
    the shape of each (open probability up to its user's scale and floor, 168 local hours of the week, peak 1 each
    day) and the log-probability of an engagement event falling in each hour (noise included)."""
    shares = np.array([a[1] for a in ARCHETYPES])
    kinds = rng.choice(len(ARCHETYPES), size=n, p=shares / shares.sum())
    centers = np.array([a[2] for a in ARCHETYPES])
    spreads = np.array([a[3] for a in ARCHETYPES])
    c1 = centers[kinds] + rng.normal(0, 1, n) * spreads[kinds]
    w1 = rng.uniform(0.8, 2.0, n)
    second = rng.random(n) < 0.5
    c2 = centers[rng.integers(len(ARCHETYPES), size=n)] + rng.normal(0, 1.0, n)
    a2 = np.where(second, rng.uniform(0.25, 0.6, n), 0.0)
    weekend_shift = np.where(rng.random(n) < 0.4, rng.uniform(1.0, 3.0, n), 0.0)
    mid_hours = np.arange(24, dtype=np.float64)[None, :] + 0.5
    shape = np.zeros((n, HOURS_PER_WEEK))
    for day in range(7):
        shift = weekend_shift if day >= 5 else np.zeros(n)
        day_shape = _bump(mid_hours, (c1 + shift)[:, None], w1[:, None]) \
            + a2[:, None] * _bump(mid_hours, (c2 + shift)[:, None], np.full((n, 1), 1.5))
        shape[:, day * 24:(day + 1) * 24] = day_shape / day_shape.max(axis=1, keepdims=True)
    density = 0.03 + shape
    density = density / density.sum(axis=1, keepdims=True)
    log_density = np.log(noise_share / HOURS_PER_WEEK + (1 - noise_share) * density)
    return shape, np.asarray(log_density, dtype=np.float64)


def bayes_profiles(truth: SendTimeTruth, *, draws: int, seed: int, chunk: int = 2_000) -> FloatArray:
    """What a policy that knows how the routines are generated would expect of each user's open probability shape
    after seeing their history: the posterior mean of the shape (168 hours), by importance sampling ``draws``
    routines from the generating distribution and weighing each by the likelihood of the user's history. Sending
    at its best hour is the best any policy can do from the histories alone (up to the Monte Carlo error, which
    only lowers it). The histories are taken as drawn: every event at its hour, however old."""
    zone, _ = resolve_zone(truth.tz)
    counts = np.zeros((len(truth.histories), HOURS_PER_WEEK))
    for u, events in enumerate(truth.histories):
        for instant, _ in events:
            local = instant.astimezone(zone)
            counts[u, local.weekday() * 24 + local.hour] += 1
    rng = np.random.default_rng(seed)
    top = np.full(len(counts), -np.inf)
    total = np.zeros(len(counts))
    expected = np.zeros_like(counts)
    for start in range(0, draws, chunk):
        shape, log_density = sample_routines(min(chunk, draws - start), rng)
        log_lik = counts @ log_density.T
        new_top = np.maximum(top, log_lik.max(axis=1))
        rescale = np.exp(np.where(np.isfinite(top), top - new_top, -np.inf))
        weights = np.exp(log_lik - new_top[:, None])
        expected = expected * rescale[:, None] + weights @ shape
        total = total * rescale + weights.sum(axis=1)
        top = new_top
    return np.asarray(expected / total[:, None], dtype=np.float64)


# ---- experiments ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmTruth:
    """A variant's true conversion rate and true unsubscribe rate per send."""

    name: str
    conversion: float
    unsubscribe: float = 0.003


@dataclass(frozen=True)
class ExperimentRun:
    verdict: Verdict
    audience: int
    sends: dict[str, int]


def simulate_experiment(arms: Sequence[ArmTruth], config: ExperimentConfig, rng: np.random.Generator, *,
                        audience: int = 200_000, batch: int = 1_000, key: str = "exp") -> ExperimentRun:
    """Run one experiment on an audience arriving in batches, deciding after each batch, until a verdict.

    The assignment is drawn in bulk but follows :func:`~growthengine.optimize.experiments.assign`: an
    ``explore_share`` of users is split evenly over the eligible variants; the rest get the control (``explore``
    mode) or the variant with the highest draw from its Beta posterior (``thompson`` mode).
    Every send's outcome is recorded on its variant, as the engine records delivery feedback.
    """
    state = Experiment(key, [a.name for a in arms], config=config)
    truth = {a.name: a for a in arms}
    seen = 0
    verdict = decide(state)
    while seen < audience and verdict.status == "running":
        size = min(batch, audience - seen)
        seen += size
        for name, n in _allocate(state, size, rng).items():
            if n <= 0:
                continue
            arm = truth[name]
            state.record(name, sends=n, conversions=int(rng.binomial(n, arm.conversion)),
                         unsubscribes=int(rng.binomial(n, arm.unsubscribe)))
        verdict = decide(state)
    return ExperimentRun(verdict, seen, {name: v.sends for name, v in state.variants.items()})


def _allocate(state: Experiment, size: int, rng: np.random.Generator) -> dict[str, int]:
    names = eligible_variants(state)
    explore = int(rng.binomial(size, state.config.explore_share))
    split = rng.multinomial(explore, np.full(len(names), 1.0 / len(names)))
    allocation = {n: int(c) for n, c in zip(names, split, strict=True)}
    rest = size - explore
    if state.config.mode == "thompson":
        a = np.array([1.0 + state.variants[n].conversions for n in names])
        b = np.array([1.0 + state.variants[n].sends - state.variants[n].conversions for n in names])
        # each user's draw is independent given the state: the batch is multinomial over P(variant draws highest),
        # estimated from 256 joint draws (cheaper than a draw per user; the same in distribution up to that noise)
        draws = rng.beta(a, b, size=(256, len(names)))
        share = np.bincount(np.argmax(draws, axis=1), minlength=len(names)) / 256.0
        for n, c in zip(names, rng.multinomial(rest, share), strict=True):
            allocation[n] += int(c)
    else:
        target = exploit_variant(state, names)
        allocation[target] = allocation.get(target, 0) + rest
    return allocation


# ---- uplift ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpliftDraw:
    treated_conversions: int
    treated_n: int
    control_conversions: int
    control_n: int
    true_uplift: float


def draw_uplift(rng: np.random.Generator, *, control_rate: float, uplift: float, treated_n: int,
                control_n: int) -> UpliftDraw:
    """One campaign with a holdout: conversions drawn from the known rates."""
    treated_rate = control_rate + uplift
    if not 0 <= treated_rate <= 1:
        raise ValueError("control_rate + uplift must be a probability")
    return UpliftDraw(int(rng.binomial(treated_n, treated_rate)), treated_n,
                      int(rng.binomial(control_n, control_rate)), control_n, uplift)
