"""The HTTP client for an outside coupon engine (SPEC 5.2): ``POST {base_url}/coupons/generate``.

The answer must carry ``code``. If it also carries ``expires_at`` (or ``expiresAt``, ISO-8601), that is the
expiry; otherwise the expiry is this engine's clock now plus the requested duration, which is what the
service was asked for.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from growthengine.clock import Clock
from growthengine.content.coupons import Coupon, CouponRequest, CouponUnavailable, normalize_code
from growthengine.content.http_retry import CallFailed, RetryPolicy, bearer, post_json
from growthengine.timefmt import TimeFormatError, parse_instant

_MAX_CODE_LENGTH = 64


class HttpCouponEngine:
    """A :class:`~growthengine.content.coupons.CouponEngine` that calls an outside coupon service."""

    def __init__(
        self,
        base_url: str,
        *,
        clock: Clock,
        api_key: str | None = None,
        policy: RetryPolicy | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = base_url.rstrip("/") + "/coupons/generate"
        self._clock = clock
        self._api_key = api_key
        self._policy = policy or RetryPolicy()
        self._owns_client = client is None
        self._client = client or httpx.Client()
        self._sleep = sleep

    def generate(self, request: CouponRequest, *, key: str | None = None) -> Coupon:
        """Ask the service for a coupon. Raises :class:`CouponUnavailable` once retries are spent, on a
        refused request (4xx) and on an answer without a usable code."""
        headers = bearer(self._api_key)
        if key is not None:
            headers["Idempotency-Key"] = key
        asked_at = self._clock.now()
        try:
            answer = post_json(
                self._client, self._url, request.wire(),
                service="coupon engine", policy=self._policy, headers=headers, sleep=self._sleep,
            )
        except CallFailed as exc:
            raise CouponUnavailable(str(exc), status=exc.status) from None
        code = answer.get("code") if isinstance(answer, dict) else None
        if not isinstance(code, str) or not code.strip() or len(code) > _MAX_CODE_LENGTH:
            raise CouponUnavailable("coupon engine answered without a usable code")
        return Coupon(
            code=normalize_code(code),
            user_id=request.user_id,
            type=request.type,
            value=request.value,
            expires_at=_expiry(answer, default=asked_at + request.duration()),
            created_at=asked_at,
        )

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> HttpCouponEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _expiry(answer: dict[str, Any], *, default: dt.datetime) -> dt.datetime:
    raw = answer.get("expires_at", answer.get("expiresAt"))
    if raw is None:
        return default
    try:
        return parse_instant(raw, field="expires_at")
    except TimeFormatError:
        return default
