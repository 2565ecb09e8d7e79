"""The HTTP client for an outside recommendation engine (SPEC 5.1): ``POST {base_url}/recommendations/batch``.

The body is the JSON list of user ids (sent in batches of ``batch_size``); the answer is an object mapping
user id to a list of products. ``limit`` is sent as a query parameter and also enforced here. Products
without an id are dropped; users the answer leaves out get an empty list.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from types import TracebackType

import httpx

from growthengine.content.http_retry import CallFailed, RetryPolicy, bearer, post_json
from growthengine.content.recommendations import DEFAULT_LIMIT, Product, RecommendationsUnavailable

log = logging.getLogger(__name__)


class HttpRecommendationEngine:
    """A :class:`~growthengine.content.recommendations.RecommendationEngine` over HTTP."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        policy: RetryPolicy | None = None,
        client: httpx.Client | None = None,
        batch_size: int = 500,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._url = base_url.rstrip("/") + "/recommendations/batch"
        self._api_key = api_key
        self._policy = policy or RetryPolicy()
        self._owns_client = client is None
        self._client = client or httpx.Client()
        self._batch_size = batch_size
        self._sleep = sleep

    def recommend(self, user_ids: Sequence[str], *, limit: int = DEFAULT_LIMIT) -> dict[str, list[Product]]:
        """Raises :class:`RecommendationsUnavailable` if any batch fails after its retries."""
        users = list(dict.fromkeys(user_ids))
        result: dict[str, list[Product]] = {u: [] for u in users}
        if limit <= 0:
            return result
        for start in range(0, len(users), self._batch_size):
            batch = users[start : start + self._batch_size]
            answer = self._call(batch, limit)
            dropped = 0
            for user in batch:
                items = answer.get(user, [])
                if not isinstance(items, list):
                    raise RecommendationsUnavailable("recommendation engine answered a non-list for a user")
                products = [p for p in (Product.from_json(i) for i in items) if p is not None]
                dropped += len(items) - len(products)
                result[user] = products[:limit]
            if dropped:
                log.warning("recommendation engine sent %d products without an id; they were dropped", dropped)
        return result

    def _call(self, batch: list[str], limit: int) -> dict[str, object]:
        url = str(httpx.URL(self._url, params={"limit": limit}))
        try:
            answer = post_json(
                self._client, url, batch,
                service="recommendation engine", policy=self._policy,
                headers=bearer(self._api_key), sleep=self._sleep,
            )
        except CallFailed as exc:
            raise RecommendationsUnavailable(str(exc), status=exc.status) from None
        if not isinstance(answer, dict):
            raise RecommendationsUnavailable("recommendation engine answered something other than an object")
        return answer

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> HttpRecommendationEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
