"""Intervals for proportions and their differences (no dependencies: closed forms)."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / n`` (n > 0)."""
    if n <= 0:
        raise ValueError("a proportion needs n > 0")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_difference(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """``p1 - p2`` with Newcombe's hybrid score interval (1998, method 10): (difference, low, high)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high


def mean_difference(x: list[float], y: list[float], z: float = Z95) -> tuple[float, float, float]:
    """``mean(x) - mean(y)`` with Welch's normal interval (each group's own variance; large samples):
    (difference, low, high). Each group needs at least two values."""
    return mean_difference_from_sums(sum(x), sum(v * v for v in x), len(x), sum(y), sum(v * v for v in y), len(y), z)


def mean_difference_from_sums(total1: float, squares1: float, n1: int, total2: float, squares2: float,
                              n2: int, z: float = Z95) -> tuple[float, float, float]:
    """``mean1 - mean2`` with Welch's normal interval, from each group's sum, sum of squares and size (what the
    rollups keep): (difference, low, high)."""
    if n1 < 2 or n2 < 2:
        raise ValueError("each group needs at least two values")
    m1, m2 = total1 / n1, total2 / n2
    v1 = max(0.0, (squares1 - n1 * m1 * m1) / (n1 - 1))
    v2 = max(0.0, (squares2 - n2 * m2 * m2) / (n2 - 1))
    d = m1 - m2
    half = z * math.sqrt(v1 / n1 + v2 / n2)
    return d, d - half, d + half
