"""The population's send-time prior: the share of engagement per hour of the week that every user's profile is
shrunk toward (refitted from the users' own models), its built-in default, and the circular smoothing of a day."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from growthengine.optimize.send_time import SendTimeModel

FloatArray = npt.NDArray[np.float64]
HOURS_PER_WEEK = 168


def _default_day_pattern() -> FloatArray:
    """The built-in population pattern: low at night, a lunch bump, the evening peak around 19:00-20:00."""
    hours = np.arange(24, dtype=np.float64)

    def bump(center: float, width: float) -> FloatArray:
        gap = np.minimum(np.abs(hours - center), 24 - np.abs(hours - center))
        return np.asarray(np.exp(-0.5 * (gap / width) ** 2), dtype=np.float64)

    day = 0.15 + 0.35 * bump(8.0, 1.2) + 0.45 * bump(12.5, 1.2) + 1.0 * bump(19.5, 1.8)
    return np.asarray(day / day.sum(), dtype=np.float64)


@functools.lru_cache(maxsize=8)
def circular_kernel(bandwidth: float) -> FloatArray:
    """The 24 x 24 matrix that smooths counts per hour of day with a Gaussian of ``bandwidth`` hours on the
    circle (each column sums to 1: smoothing moves evidence, it does not add any)."""
    if bandwidth <= 0:
        return np.eye(24)
    hours = np.arange(24)
    gap = np.abs(hours[:, None] - hours[None, :])
    gap = np.minimum(gap, 24 - gap)
    kernel = np.exp(-0.5 * (gap / bandwidth) ** 2)
    kernel = kernel / kernel.sum(axis=0, keepdims=True)
    kernel.setflags(write=False)
    return np.asarray(kernel, dtype=np.float64)


class PopulationSendTime:
    """The population's hour-of-week engagement share: the prior every user's profile is shrunk toward."""

    def __init__(self, share: FloatArray | None = None, users: int = 0) -> None:
        if share is None:
            share = np.tile(_default_day_pattern(), 7) / 7.0
        share = np.asarray(share, dtype=np.float64)
        if share.shape != (HOURS_PER_WEEK,) or not np.all(np.isfinite(share)) or np.any(share < 0):
            raise ValueError("a population share has 168 finite, non-negative entries")
        total = float(share.sum())
        self.share: FloatArray = share / total if total > 0 else np.full(HOURS_PER_WEEK, 1.0 / HOURS_PER_WEEK)
        self.users = users

    @classmethod
    def from_models(cls, models: Iterable[SendTimeModel], *, min_events: int = 1,
                    default_weight: float = 1.0) -> PopulationSendTime:
        """The mean of the users' normalized histograms (each user counts once, however active), blended with
        ``default_weight`` users' worth of the built-in pattern so that no hour is ever impossible."""
        total = np.tile(_default_day_pattern(), 7) / 7.0 * default_weight
        users = 0
        for model in models:
            if model.events < min_events:
                continue
            weight = float(model.counts.sum())
            if weight <= 0:
                continue
            total = total + model.counts / weight
            users += 1
        return cls(total, users)

    def day_share(self) -> FloatArray:
        """Share per hour of day (summed over the days of the week)."""
        return np.asarray(self.share.reshape(7, 24).sum(axis=0), dtype=np.float64)

    def peak(self) -> int:
        return int(np.argmax(self.share))

    def to_json(self) -> dict[str, Any]:
        return {"v": 1, "users": self.users, "share": [round(float(x), 7) for x in self.share]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PopulationSendTime:
        return cls(np.asarray(data["share"], dtype=np.float64), int(data.get("users", 0)))
