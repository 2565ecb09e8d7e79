"""Statistics on proportions that the experiments and reports share: the always-valid (mixture SPRT) test of two
rates with its confidence sequence, and the Wilson and Newcombe intervals of a holdout's uplift."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

# ---- the always-valid test ----------------------------------------------------------------------------------


def msprt_p_value(x1: int, n1: int, x2: int, n2: int, tau: float) -> float:
    """The always-valid p-value of "rate 1 == rate 2" after ``x`` successes in ``n`` trials on each side."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 1.0
    diff = x2 / n2 - x1 / n1
    t2 = tau * tau
    log_lr = 0.5 * math.log(variance / (variance + t2)) + t2 * diff * diff / (2 * variance * (variance + t2))
    return 1.0 if log_lr <= 0 else math.exp(-min(log_lr, 700.0))


def confidence_radius(x1: int, n1: int, x2: int, n2: int, tau: float, alpha: float) -> float:
    """Half-width of the always-valid ``1 - alpha`` confidence sequence for ``rate2 - rate1`` (inverting the
    mSPRT; unpooled variance, with the rates pulled toward 1/2 by one pseudo-trial so it is never zero)."""
    if n1 <= 0 or n2 <= 0:
        return math.inf
    p1, p2 = (x1 + 0.5) / (n1 + 1), (x2 + 0.5) / (n2 + 1)
    variance = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
    t2 = tau * tau
    return math.sqrt(2 * variance * (variance + t2) / t2 * math.log(math.sqrt((variance + t2) / variance) / alpha))


# ---- holdout uplift -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Uplift:
    diff: float
    low: float
    high: float
    method: str
    level: float = 0.95


@functools.lru_cache(maxsize=32)
def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a proportion."""
    if n <= 0:
        raise ValueError("n must be positive")
    z = _z(level)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def uplift(treated_conversions: int, treated_n: int, control_conversions: int, control_n: int,
           level: float = 0.95) -> Uplift:
    """Conversion rate of the treated minus the holdout's, with Newcombe's hybrid score interval."""
    if treated_n <= 0 or control_n <= 0:
        raise ValueError("both groups need at least one user")
    if not 0 <= treated_conversions <= treated_n or not 0 <= control_conversions <= control_n:
        raise ValueError("conversions must be between 0 and the group size")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    p1, p2 = treated_conversions / treated_n, control_conversions / control_n
    l1, u1 = wilson_interval(treated_conversions, treated_n, level)
    l2, u2 = wilson_interval(control_conversions, control_n, level)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Uplift(diff, low, high, "newcombe-wilson", level)
