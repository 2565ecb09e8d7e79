"""The coupon engine contract (SPEC 5.2) and the embedded coupon engine.

``POST /coupons/generate`` takes ``{"type": "percent", "value": 5, "expiry": "24h", "user_id": "..."}`` and
answers ``{"code": "SAVE5-XYZ"}``. A :class:`CouponEngine` is anything that can do that: the HTTP client for
an outside service (``coupon_client.py``), or :class:`EmbeddedCouponEngine`, which keeps coupons in the
engine's own database with codes such as ``SAVE5-7KQ2XM``.

Exactly once: pass the message's deterministic key as ``key``; asking again with the same key returns the
coupon issued the first time (the embedded engine stores the key; the HTTP client sends it as
``Idempotency-Key``). Call ``generate`` outside any open database transaction, as for any outside call.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol

from growthengine.clock import Clock, from_us, to_us
from growthengine.segments.durations import DurationError, format_duration_us, parse_duration_us
from growthengine.storage.coupon_store import CouponRecord
from growthengine.storage.unit_of_work import Store, Tx
from growthengine.timefmt import format_instant

CouponType = Literal["percent", "amount"]
COUPON_TYPES: tuple[CouponType, ...] = ("percent", "amount")
#: Code characters: no 0/O, 1/I/L, so a code read aloud or typed from a screenshot survives.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 6
_MAX_CODE_TRIES = 20


class CouponError(Exception):
    """Base of every coupon problem; the message is fit to show an operator (no personal data)."""


class InvalidCouponRequest(CouponError, ValueError):
    """The coupon asked for makes no sense (type, value or expiry)."""


class CouponUnavailable(CouponError):
    """The coupon engine could not issue a coupon (down, timing out, refusing). The flow takes its fallback."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CouponNotFound(CouponError, LookupError):
    """No coupon has this code."""


class CouponExpired(CouponError):
    """The coupon's expiry has passed."""


class CouponAlreadyRedeemed(CouponError):
    """The coupon was already used for another order."""


class CouponNotYours(CouponError):
    """The coupon was issued to another user."""


@dataclass(frozen=True, slots=True)
class CouponRequest:
    """What to issue: ``type`` percent (of the order) or amount (THB off), ``value``, ``expiry`` like ``24h``."""

    user_id: str
    type: CouponType = "percent"
    value: Decimal = Decimal(5)
    expiry: str = "24h"

    def __post_init__(self) -> None:
        if not isinstance(self.user_id, str) or not self.user_id.strip():
            raise InvalidCouponRequest("a coupon needs the user_id it is issued to")
        if self.type not in COUPON_TYPES:
            raise InvalidCouponRequest(f"coupon type must be one of {', '.join(COUPON_TYPES)}, got {self.type!r}")
        value = self.value
        if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
            raise InvalidCouponRequest(f"coupon value must be a positive number, got {value!r}")
        if self.type == "percent" and value > 100:
            raise InvalidCouponRequest(f"a percent coupon cannot take more than 100 %, got {value}")
        self.duration()

    @classmethod
    def build(
        cls, user_id: str, *, type: str = "percent", value: object = 5, expiry: object = "24h"
    ) -> CouponRequest:
        """A request from loosely typed values (flow config, JSON): ``value`` may be int, float or text,
        ``expiry`` a duration text (``24h``, ``30m``, ``7d``) or a timedelta."""
        if isinstance(expiry, dt.timedelta):
            us = round(expiry.total_seconds() * 1_000_000)
            if us <= 0:
                raise InvalidCouponRequest("coupon expiry must be in the future")
            expiry_text = format_duration_us(us)
        else:
            expiry_text = str(expiry).strip().lower()
        if type not in COUPON_TYPES:
            raise InvalidCouponRequest(f"coupon type must be one of {', '.join(COUPON_TYPES)}, got {type!r}")
        return cls(user_id=user_id, type=type, value=_decimal(value), expiry=expiry_text)

    @classmethod
    def from_mapping(cls, user_id: str, config: Mapping[str, Any]) -> CouponRequest:
        """From flow config such as ``{type: percent, value: 5, expiry: 24h}``."""
        return cls.build(
            user_id,
            type=str(config.get("type", "percent")),
            value=config.get("value", 5),
            expiry=config.get("expiry", "24h"),
        )

    def duration(self) -> dt.timedelta:
        try:
            return dt.timedelta(microseconds=parse_duration_us(self.expiry))
        except DurationError as exc:
            raise InvalidCouponRequest(f"coupon expiry: {exc}") from None

    def wire(self) -> dict[str, Any]:
        """The body of ``POST /coupons/generate``."""
        value: int | float = int(self.value) if self.value == self.value.to_integral_value() else float(self.value)
        return {"type": self.type, "value": value, "expiry": self.expiry, "user_id": self.user_id}


@dataclass(frozen=True, slots=True)
class Coupon:
    """An issued coupon."""

    code: str
    user_id: str
    type: CouponType
    value: Decimal
    expires_at: dt.datetime
    created_at: dt.datetime
    redeemed_at: dt.datetime | None = None
    order_id: str | None = None

    def is_expired(self, at: dt.datetime) -> bool:
        return at >= self.expires_at

    def as_context(self) -> dict[str, Any]:
        """What message templates read as ``coupon``: code, type, value, expires_at."""
        return {"code": self.code, "type": self.type, "value": self.value, "expires_at": self.expires_at}

    def as_json(self) -> dict[str, Any]:
        """JSON-ready (for a message record or an API answer)."""
        return {
            "code": self.code,
            "userId": self.user_id,
            "type": self.type,
            "value": str(self.value),
            "expiresAt": format_instant(self.expires_at),
            "createdAt": format_instant(self.created_at),
            "redeemedAt": format_instant(self.redeemed_at) if self.redeemed_at else None,
            "orderId": self.order_id,
        }


class CouponEngine(Protocol):
    """Issues coupons (SPEC 5.2)."""

    def generate(self, request: CouponRequest, *, key: str | None = None) -> Coupon:
        """Issue a coupon; the same ``key`` again gives the same coupon. Raises :class:`CouponUnavailable`."""
        ...


def normalize_code(code: str) -> str:
    """Codes are matched without regard to case or surrounding space."""
    return code.strip().upper()


def code_prefix(request: CouponRequest) -> str:
    """``SAVE5`` for 5 %, ``SAVE7P5`` for 7.5 %, ``THB100`` for 100 baht off."""
    number = format(request.value.normalize(), "f").replace(".", "P")
    return f"SAVE{number}" if request.type == "percent" else f"THB{number}"


def random_code_part() -> str:
    """Six characters from :data:`CODE_ALPHABET` (31**6, about 887 million codes per prefix)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class EmbeddedCouponEngine:
    """The coupon engine that ships with Growth Engine: coupons live in the engine's database."""

    def __init__(self, store: Store, clock: Clock, *, code_part: Callable[[], str] = random_code_part) -> None:
        self._store = store
        self._clock = clock
        self._code_part = code_part

    def generate(self, request: CouponRequest, *, key: str | None = None) -> Coupon:
        with self._store.transaction() as tx:
            return self.generate_in(tx, request, key=key)

    def generate_in(self, tx: Tx, request: CouponRequest, *, key: str | None = None) -> Coupon:
        """:meth:`generate` inside a transaction the caller already holds."""
        if key is not None:
            existing = tx.coupons.by_issue_key(key)
            if existing is not None:
                return _coupon(existing)
        now = self._clock.now()
        prefix = code_prefix(request)
        for _ in range(_MAX_CODE_TRIES):
            record = CouponRecord(
                code=f"{prefix}-{self._code_part()}",
                issue_key=key,
                user_id=request.user_id,
                type=request.type,
                value=str(request.value.normalize()),
                created_us=to_us(now),
                expires_us=to_us(now + request.duration()),
            )
            if tx.coupons.insert(record):
                return _coupon(record)
            if key is not None:
                raced = tx.coupons.by_issue_key(key)
                if raced is not None:
                    return _coupon(raced)
        raise CouponUnavailable(f"no free {prefix} code found in {_MAX_CODE_TRIES} tries")

    def get(self, code: str) -> Coupon | None:
        with self._store.transaction() as tx:
            record = tx.coupons.get(normalize_code(code))
        return _coupon(record) if record else None

    def redeem(self, code: str, *, user_id: str, order_id: str, at: dt.datetime) -> Coupon:
        """Use the coupon on an order. Redeeming it again for the same order returns it unchanged.

        Raises :class:`CouponNotFound`, :class:`CouponNotYours`, :class:`CouponAlreadyRedeemed` (another
        order) or :class:`CouponExpired` (``at`` is at or past the expiry).
        """
        code = normalize_code(code)
        with self._store.transaction() as tx:
            record = tx.coupons.get(code)
            if record is None:
                raise CouponNotFound(f"no coupon with code {code}")
            if record.user_id != user_id:
                raise CouponNotYours(f"coupon {code} was issued to another user")
            if record.redeemed_us is not None:
                if record.order_id == order_id:
                    return _coupon(record)
                raise CouponAlreadyRedeemed(f"coupon {code} was already used on another order")
            coupon = _coupon(record)
            if coupon.is_expired(at):
                raise CouponExpired(f"coupon {code} expired at {format_instant(coupon.expires_at)}")
            if not tx.coupons.mark_redeemed(code, order_id=order_id, at_us=to_us(at)):
                raise CouponAlreadyRedeemed(f"coupon {code} was already used on another order")
            updated = tx.coupons.get(code)
        assert updated is not None
        return _coupon(updated)


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool):
        raise InvalidCouponRequest(f"coupon value must be a number, got {value!r}")
    try:
        if isinstance(value, float):
            return Decimal(repr(value))
        if isinstance(value, (int, str, Decimal)):
            return Decimal(value)
    except InvalidOperation:
        pass
    raise InvalidCouponRequest(f"coupon value must be a number, got {value!r}")


def _coupon(record: CouponRecord) -> Coupon:
    return Coupon(
        code=record.code,
        user_id=record.user_id,
        type="amount" if record.type == "amount" else "percent",
        value=Decimal(record.value),
        expires_at=from_us(record.expires_us),
        created_at=from_us(record.created_us),
        redeemed_at=from_us(record.redeemed_us) if record.redeemed_us is not None else None,
        order_id=record.order_id,
    )
