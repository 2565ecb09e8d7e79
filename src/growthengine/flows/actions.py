"""Flow actions that ask another service: the coupon engine, the recommendation engine."""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from growthengine.content.coupons import Coupon, CouponError, CouponRequest
from growthengine.content.recommendations import RecommendationsUnavailable
from growthengine.storage.unit_of_work import Tx


class ActionFailed(Exception):
    """The service could not help (after its retries); the step takes its declared fallback."""


class CouponSource(Protocol):
    remote: bool
    """True for another service: the call is a recorded activity of the run, made outside any transaction."""

    def issue(self, tx: Tx | None, request: CouponRequest, key: str) -> Coupon: ...


class RecommendationSource(Protocol):
    remote: bool

    def recommend(self, tx: Tx | None, user_ids: list[str], limit: int) -> dict[str, list[dict[str, Any]]]: ...


class EmbeddedCoupons:
    """The built-in coupon engine, inside the flow's own transaction (idempotent by key)."""

    remote = False

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def issue(self, tx: Tx | None, request: CouponRequest, key: str) -> Coupon:
        assert tx is not None, "the embedded coupon engine works inside the flow's transaction"
        coupon: Coupon = self._engine.generate_in(tx, request, key=key)
        return coupon


class RemoteCoupons:
    """An external coupon engine (``POST /coupons/generate``) through its client (which retries)."""

    remote = True

    def __init__(self, client: Any) -> None:
        self._client = client

    def issue(self, tx: Tx | None, request: CouponRequest, key: str) -> Coupon:
        coupon: Coupon = self._client.generate(request, key=key)
        return coupon


def issue_coupon(source: CouponSource, tx: Tx | None, user_id: str, spec: dict[str, Any], key: str) -> dict[str, Any]:
    try:
        coupon = source.issue(tx, CouponRequest.from_mapping(user_id, spec), key)
    except CouponError as exc:
        raise ActionFailed(f"coupon engine: {exc}") from None
    return {"code": coupon.code, "type": coupon.type, "value": str(coupon.value),
            "expires_at": coupon.expires_at.astimezone(dt.UTC).isoformat()}


def fetch_recommendations(source: RecommendationSource, tx: Tx | None, user_id: str,
                          limit: int) -> list[dict[str, Any]]:
    try:
        products = source.recommend(tx, [user_id], limit).get(user_id, [])
    except RecommendationsUnavailable as exc:
        raise ActionFailed(f"recommendation engine: {exc}") from None
    if not products:
        raise ActionFailed("recommendation engine: nothing to recommend")
    return products


class EmbeddedRecommendations:
    """The built-in recommendation engine, reading inside the flow's transaction."""

    remote = False

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def recommend(self, tx: Tx | None, user_ids: list[str], limit: int) -> dict[str, list[dict[str, Any]]]:
        assert tx is not None, "the embedded recommendation engine reads inside the flow's transaction"
        found = self._engine.recommend_in(tx, user_ids, limit=limit)
        return {u: [p.as_json() for p in products] for u, products in found.items()}


class RemoteRecommendations:
    """An external recommendation engine (``POST /recommendations/batch``) through its client."""

    remote = True

    def __init__(self, client: Any) -> None:
        self._client = client

    def recommend(self, tx: Tx | None, user_ids: list[str], limit: int) -> dict[str, list[dict[str, Any]]]:
        found = self._client.recommend(user_ids, limit=limit)
        return {u: [p.as_json() for p in products] for u, products in found.items()}
