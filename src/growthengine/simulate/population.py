"""The simulated users and their latent habits: the ground truth that engine decisions can be scored against.

Every array has one row per user (index ``i``, user id ``u000001`` for ``i = 0``). Hours of the week count from
Monday 00:00 in the user's own timezone.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from growthengine.simulate.catalog import CATEGORIES, PROVINCE_WEIGHTS, PROVINCES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

ARCHETYPES = ("casual", "regular", "window_shopper", "bargain_hunter", "local_buyer")
_SHARES = (0.36, 0.20, 0.16, 0.12, 0.16)
# Per archetype: sessions/day, views/session, add-to-cart per view, checkout per session with a cart,
# favorite per view, location searches per session, share of searches for the home province, price sensitivity,
# share of churn-prone users.
_PARAMS = np.array([
    # sess  views cart   buy   fav   search local price churny
    [0.35, 2.5, 0.018, 0.40, 0.03, 0.15, 0.55, 0.50, 0.12],   # casual
    [0.90, 3.0, 0.028, 0.55, 0.04, 0.25, 0.55, 0.35, 0.35],   # regular
    [1.10, 6.0, 0.014, 0.00, 0.05, 0.25, 0.40, 0.50, 0.12],   # window_shopper
    [0.80, 4.0, 0.020, 0.30, 0.12, 0.25, 0.45, 0.85, 0.12],   # bargain_hunter
    [0.70, 3.0, 0.024, 0.45, 0.04, 1.30, 0.92, 0.50, 0.12],   # local_buyer
])

MESSAGE_CHANNELS = ("push", "email", "sms", "in_app")
CONSENT_CHANNELS = ("push", "email", "sms", "in_app", "ads")
_BASE_OPEN = np.array([0.10, 0.20, 0.12, 0.30])
_BASE_CLICK = np.array([0.20, 0.12, 0.08, 0.25])
_FAVOURITE_CHANNEL = np.array([0.45, 0.20, 0.10, 0.25])
_CONSENT_RATE = np.array([0.72, 0.55, 0.25, 0.90, 0.45])

TIMEZONES = (("Asia/Bangkok", 0.94), ("Asia/Singapore", 0.02), ("Asia/Tokyo", 0.015), ("Asia/Ho_Chi_Minh", 0.015),
             ("Asia/Dubai", 0.01))
FIRST_NAMES = ("สมชาย", "สมหญิง", "นก", "มานี", "ปิติ", "ชูใจ", "วีระ", "อรุณี", "ธนพล", "กนกวรรณ", "ณัฐวุฒิ", "พิมพ์ชนก",
               "ศิริพร", "อนุชา", "จิราพร", "ภาณุ")
LAST_NAMES = ("ใจดี", "รักไทย", "ศรีสุข", "แก้วมณี", "ทองดี", "บุญมา", "สุขสวัสดิ์", "วงศ์ใหญ่", "จันทร์เพ็ญ", "พรหมมา")
EN_NAMES = ("Alex", "Sam", "Chris", "Jordan", "Taylor", "Morgan", "Jamie", "Robin")

# Habit peaks in local time: (centre hour, width in hours, share of users for whom it is the main one).
_PEAKS = np.array([[8.0, 1.0, 0.20], [12.5, 1.0, 0.20], [20.0, 1.5, 0.35], [23.0, 1.2, 0.15], [15.0, 1.5, 0.10]])


@dataclass(frozen=True, slots=True)
class UserTruth:
    """One user's latent habits, as the simulator knows them and the engine must infer them."""

    user_id: str
    archetype: str
    province: str
    timezone: str
    language: str
    is_seller: bool
    sessions_per_day: float
    active_hours: tuple[float, ...]  # probability of a session in each local hour of the week (sums to 1)
    category_affinity: dict[str, float]
    price_sensitivity: float
    purchase_propensity: float
    churn_tendency: float  # daily hazard of going quiet for good
    churn_day: float  # days after the start when the user goes quiet (inf: not within any horizon)
    open_prob: dict[str, float]  # chance to open a message on each channel, sent at the user's peak hour
    click_prob: dict[str, float]  # chance to click an opened message
    persuadability: float  # chance that a click leads to a purchase
    unsubscribe_prob: float  # chance that any one marketing message makes the user unsubscribe from its channel
    consent: dict[str, bool]

    @property
    def peak_hour_of_week(self) -> int:
        return int(np.argmax(self.active_hours))

    def expected_uplift(self, channel: str) -> float:
        """The true extra purchase probability one message on ``channel`` causes: open x click x persuadability.

        That is for a message that reaches the user at their peak hour; off-peak it is lower (push and SMS most),
        and a price-drop alert converts up to 1.5 times as well for the most price-sensitive users.
        """
        return self.open_prob.get(channel, 0.0) * self.click_prob.get(channel, 0.0) * self.persuadability


def user_id(index: int) -> str:
    return f"u{index + 1:06d}"


def _beta_around(rng: np.random.Generator, mean: FloatArray, strength: float = 12.0) -> FloatArray:
    m = np.clip(mean, 0.01, 0.99)
    return rng.beta(m * strength, (1 - m) * strength)


def _hour_profiles(rng: np.random.Generator, n: int) -> FloatArray:
    """(n, 168) hour-of-week session probabilities in local time, each row summing to 1."""
    hours = np.arange(24, dtype=np.float64)
    main = rng.choice(len(_PEAKS), size=n, p=_PEAKS[:, 2] / _PEAKS[:, 2].sum())
    second = rng.choice(len(_PEAKS), size=n, p=_PEAKS[:, 2] / _PEAKS[:, 2].sum())
    has_second = rng.random(n) < 0.6
    jitter = rng.normal(0.0, 0.75, size=(n, 2))

    def bump(centre: FloatArray, width: FloatArray) -> FloatArray:
        d = np.abs(hours[None, :] - centre[:, None])
        d = np.minimum(d, 24 - d)
        out: FloatArray = np.exp(-0.5 * (d / width[:, None]) ** 2)
        return out

    c1, w1 = _PEAKS[main, 0] + jitter[:, 0], _PEAKS[main, 1]
    c2, w2 = _PEAKS[second, 0] + jitter[:, 1], _PEAKS[second, 1]
    floor = np.where((hours >= 1) & (hours < 7), 0.003, 0.03)[None, :]
    weekday = bump(c1, w1) + 0.5 * has_second[:, None] * bump(c2, w2) + floor
    weekend = (bump(c1 + 1.0, w1 * 1.3) + 0.5 * has_second[:, None] * bump(c2 + 1.0, w2 * 1.3)
               + 0.4 * bump(np.full(n, 14.0), np.full(n, 2.5)) + floor) * 1.2
    week = np.concatenate([np.tile(weekday, (1, 5)), np.tile(weekend, (1, 2))], axis=1)
    result: FloatArray = week / week.sum(axis=1, keepdims=True)
    return result


class Population:
    """The users: traits they tell the engine, and habits they do not."""

    def __init__(self, rng: np.random.Generator, n: int, start: dt.datetime) -> None:
        if n < 1:
            raise ValueError("a population needs at least one user")
        self.n = n
        self.ids = [user_id(i) for i in range(n)]
        self.archetype: IntArray = rng.choice(len(ARCHETYPES), size=n, p=np.array(_SHARES)).astype(np.int64)
        p = _PARAMS[self.archetype]
        self.province: IntArray = rng.choice(len(PROVINCES), size=n, p=PROVINCE_WEIGHTS).astype(np.int64)
        tz_names = [t for t, _ in TIMEZONES]
        tz_index = rng.choice(len(TIMEZONES), size=n, p=np.array([w for _, w in TIMEZONES]) / sum(
            w for _, w in TIMEZONES))
        self.timezone = [tz_names[k] for k in tz_index]
        offsets = {name: _offset_minutes(name, start) for name in tz_names}
        self.utc_offset_min: IntArray = np.array([offsets[t] for t in self.timezone], dtype=np.int64)
        self.language = ["en" if x else "th" for x in rng.random(n) < 0.08]

        self.sessions_per_day: FloatArray = p[:, 0] * rng.lognormal(0.0, 0.35, size=n)
        self.active_hours = _hour_profiles(rng, n)
        self.views_per_session: FloatArray = p[:, 1] * rng.lognormal(0.0, 0.25, size=n)
        self.cart_rate: FloatArray = np.clip(p[:, 2] * rng.lognormal(0.0, 0.3, size=n), 0.0, 0.5)
        self.purchase_propensity: FloatArray = np.where(p[:, 3] > 0, _beta_around(rng, p[:, 3]), 0.0)
        self.favorite_rate: FloatArray = np.clip(p[:, 4] * rng.lognormal(0.0, 0.3, size=n), 0.0, 0.6)
        self.search_rate: FloatArray = p[:, 5] * rng.lognormal(0.0, 0.25, size=n)
        self.local_focus: FloatArray = _beta_around(rng, p[:, 6], 20.0)
        self.price_sensitivity: FloatArray = _beta_around(rng, p[:, 7])
        self.category_affinity: FloatArray = rng.dirichlet(np.full(len(CATEGORIES), 0.35), size=n)

        churny = rng.random(n) < p[:, 8]
        self.churn_tendency: FloatArray = np.where(churny, rng.uniform(0.03, 0.08, size=n), 0.001)
        self.churn_day: FloatArray = 7.0 + rng.exponential(1.0 / self.churn_tendency)

        favourite = rng.choice(len(MESSAGE_CHANNELS), size=n, p=_FAVOURITE_CHANNEL)
        ignored = (favourite + rng.integers(1, len(MESSAGE_CHANNELS), size=n)) % len(MESSAGE_CHANNELS)
        mult = np.ones((n, len(MESSAGE_CHANNELS)))
        mult[np.arange(n), favourite] = 2.5
        mult[np.arange(n), ignored] = 0.1
        self.open_prob: FloatArray = np.clip(
            _BASE_OPEN[None, :] * mult * rng.lognormal(0.0, 0.5, size=mult.shape), 0.005, 0.95)
        self.click_prob: FloatArray = np.clip(
            _BASE_CLICK[None, :] * rng.lognormal(0.0, 0.4, size=mult.shape), 0.005, 0.9)
        self.persuadability: FloatArray = np.clip(
            rng.beta(2.0, 8.0, size=n) * (1.0 + 0.5 * self.price_sensitivity), 0.0, 0.95)
        self.unsubscribe_prob: FloatArray = np.where(rng.random(n) < 0.08, 0.05, 0.003)

        self.has_app: BoolArray = rng.random(n) < 0.88
        self.consent: BoolArray = rng.random((n, len(CONSENT_CHANNELS))) < _CONSENT_RATE[None, :]
        self.consent[:, 0] &= self.has_app

        roll = rng.random(n)
        self.is_seller: BoolArray = roll < 0.15
        self.power_seller: BoolArray = roll < 0.02
        self.listing_rate: FloatArray = np.where(self.power_seller, rng.uniform(0.8, 2.0, size=n),
                                                 rng.uniform(0.03, 0.25, size=n))
        # Buyers who register as sellers later; a third of them never list (the seller coach's audience).
        self.seller_day: FloatArray = np.where(self.is_seller, -1.0, rng.exponential(400.0, size=n))
        self.never_lists: BoolArray = ~self.is_seller & (rng.random(n) < 0.35)
        self.first_listing_days: FloatArray = rng.exponential(2.0, size=n)

        self._name_first = rng.integers(len(FIRST_NAMES), size=n)
        self._name_last = rng.integers(len(LAST_NAMES), size=n)
        self._phone = rng.integers(10_000_000, 100_000_000, size=n)
        self._phone_prefix = rng.choice(np.array([8, 9, 8]), size=n)  # valid mobile ranges (not all of 06x is)
        self._token = rng.integers(0, 2**62, size=n)

    def index_of(self, uid: str) -> int | None:
        if len(uid) == 7 and uid[0] == "u" and uid[1:].isdigit():
            i = int(uid[1:]) - 1
            return i if 0 <= i < self.n else None
        return None

    def name(self, i: int) -> str:
        if self.language[i] == "en":
            return f"{EN_NAMES[int(self._name_first[i]) % len(EN_NAMES)]} {LAST_NAMES[int(self._name_last[i])]}"
        return f"{FIRST_NAMES[int(self._name_first[i])]} {LAST_NAMES[int(self._name_last[i])]}"

    def traits(self, i: int) -> dict[str, Any]:
        """The traits the app sends with ``identify`` (fake contact details under reserved names)."""
        traits: dict[str, Any] = {
            "name": self.name(i),
            "email": f"user{i + 1}@example.test",
            "phone": f"+66{int(self._phone_prefix[i])}{int(self._phone[i]):08d}",
            "province": PROVINCES[int(self.province[i])].name,
            "timezone": self.timezone[i],
            "language": self.language[i],
            "is_seller": bool(self.is_seller[i]),
            "consent": {c: bool(self.consent[i, k]) for k, c in enumerate(CONSENT_CHANNELS)},
        }
        if self.has_app[i]:
            traits["push_token"] = f"sim-fcm-{int(self._token[i]):016x}"
        return traits

    def truth(self, i: int) -> UserTruth:
        return UserTruth(
            user_id=self.ids[i],
            archetype=ARCHETYPES[int(self.archetype[i])],
            province=PROVINCES[int(self.province[i])].name,
            timezone=self.timezone[i],
            language=self.language[i],
            is_seller=bool(self.is_seller[i]),
            sessions_per_day=float(self.sessions_per_day[i]),
            active_hours=tuple(float(x) for x in self.active_hours[i]),
            category_affinity={c.key: float(a) for c, a in zip(CATEGORIES, self.category_affinity[i], strict=True)},
            price_sensitivity=float(self.price_sensitivity[i]),
            purchase_propensity=float(self.purchase_propensity[i]),
            churn_tendency=float(self.churn_tendency[i]),
            churn_day=float(self.churn_day[i]),
            open_prob={c: float(self.open_prob[i, k]) for k, c in enumerate(MESSAGE_CHANNELS)},
            click_prob={c: float(self.click_prob[i, k]) for k, c in enumerate(MESSAGE_CHANNELS)},
            persuadability=float(self.persuadability[i]),
            unsubscribe_prob=float(self.unsubscribe_prob[i]),
            consent={c: bool(self.consent[i, k]) for k, c in enumerate(CONSENT_CHANNELS)},
        )

    def hour_of_week(self, at_us: int) -> IntArray:
        """Each user's local hour of the week at the UTC instant ``at_us``."""
        local_hours = (at_us + self.utc_offset_min * 60_000_000) // 3_600_000_000
        # 1970-01-01 was a Thursday: three days after a Monday.
        how: IntArray = (local_hours + 72) % 168
        return how


def _offset_minutes(name: str, at: dt.datetime) -> int:
    offset = at.astimezone(zoneinfo.ZoneInfo(name)).utcoffset() or dt.timedelta(0)
    return int(offset.total_seconds() // 60)
