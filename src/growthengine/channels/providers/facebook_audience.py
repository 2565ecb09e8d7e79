"""Facebook (Meta) Custom Audience sync through the Marketing API (v27.0): ``{base}/{version}/{audience}/users``.

As Meta documents the endpoint and its Business SDK sends it: an add is a ``POST`` whose form fields are
``payload`` (JSON text: ``{"schema": "EMAIL_SHA256", "data": [...]}``) and ``session`` (JSON text), a removal is a
``DELETE`` carrying the same fields in its query string (the SDK's ``remove_users``), never a body. Up to 10,000
hashed emails a request. Idempotency: the ``session`` (``session_id`` derived from our key, ``batch_seq``,
``last_batch_flag``) lets Meta recognise a repeated batch; members are a set anyway. Requests are paced by a token
bucket and retried on 5xx, 429 and Meta's throttling codes (sent with a 400), waiting as ``Retry-After`` or the
``X-Business-Use-Case-Usage`` header's ``estimated_time_to_regain_access`` (minutes) says.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import Field, SecretStr

from growthengine.channels.providers import http_call
from growthengine.channels.providers.api_versions import pinned
from growthengine.channels.providers.audience import (
    Action,
    AudienceProvider,
    AudienceSyncResult,
    batched,
    key_number,
)
from growthengine.channels.providers.base import CredentialsError
from growthengine.channels.providers.config import ProviderConfig
from growthengine.channels.providers.rate_limit import TokenBucket

API_VERSION = pinned("meta_marketing")  # v27.0: see api_versions.py
MAX_BATCH = 10_000
# Graph API error codes that mean "slow down / try again", even when sent with HTTP 400.
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80003})
USAGE_HEADER = "X-Business-Use-Case-Usage"


class FacebookAudienceConfig(ProviderConfig):
    access_token: SecretStr
    audience_id: str
    app_secret: SecretStr | None = None
    api_version: str = Field(default=API_VERSION, pattern=r"^v[0-9]+\.[0-9]+$")
    base_url: str = "https://graph.facebook.com"
    batch_size: int = Field(default=MAX_BATCH, ge=1, le=MAX_BATCH)
    # Removals travel in the query string (as the SDK sends them): a smaller batch keeps the URL short.
    remove_batch_size: int = Field(default=MAX_BATCH, ge=1, le=MAX_BATCH)
    requests_per_s: float = Field(default=5.0, gt=0)
    burst: int = Field(default=5, ge=1)


class FacebookAudienceProvider(AudienceProvider):
    name = "facebook_audience"

    def __init__(self, config: FacebookAudienceConfig, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
                 limiter: TokenBucket | None = None) -> None:
        self.config = config
        self._client = client or httpx.Client()
        self._sleep = sleep
        self._policy = config.retry_policy()
        self._limiter = limiter or TokenBucket(config.requests_per_s, config.burst, clock=monotonic, sleep=sleep)
        self._url = f"{config.base_url.rstrip('/')}/{config.api_version}/{config.audience_id}"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **kwargs: Any) -> FacebookAudienceProvider:
        return cls(FacebookAudienceConfig.from_settings(settings), **kwargs)

    def close(self) -> None:
        self._client.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.access_token.get_secret_value()}"}

    def _proof(self) -> dict[str, str]:
        """``appsecret_proof``: HMAC-SHA256 of the token under the app secret, when the app requires it."""
        if self.config.app_secret is None:
            return {}
        proof = hmac.new(self.config.app_secret.get_secret_value().encode(),
                         self.config.access_token.get_secret_value().encode(), hashlib.sha256).hexdigest()
        return {"appsecret_proof": proof}

    def fields(self, batch: list[str], session_id: int, seq: int, batches: int, total: int) -> dict[str, str]:
        """The request's parameters, each object as JSON text (the Business SDK's top-level encoding)."""
        session = {"session_id": session_id, "batch_seq": seq, "last_batch_flag": seq == batches,
                   "estimated_num_total": total}
        return {"payload": json.dumps({"schema": "EMAIL_SHA256", "data": batch}, separators=(",", ":")),
                "session": json.dumps(session, separators=(",", ":")), **self._proof()}

    def _sync(self, action: Action, hashes: list[str], key: str) -> AudienceSyncResult:
        result = AudienceSyncResult(action, len(hashes))
        session_id = key_number(key)
        result.reference = str(session_id)
        removing = action == "remove"
        batches = list(batched(hashes, self.config.remove_batch_size if removing else self.config.batch_size))
        for seq, batch in enumerate(batches, start=1):
            fields = self.fields(batch, session_id, seq, len(batches), len(hashes))
            self._limiter.acquire()
            answer = http_call.call(self._client, "DELETE" if removing else "POST", f"{self._url}/users",
                                    service="facebook_audience", policy=self._policy, sleep=self._sleep,
                                    message_id=key[:40], headers=self._headers(), transient=_throttled,
                                    wait_hint=regain_access_wait, params=fields if removing else None,
                                    data=None if removing else fields)
            if not answer.ok:
                assert answer.error is not None
                result.errors.append(answer.error)
                result.permanent = answer.permanent
                return result
            result.batches += 1
            data = answer.json() or {}
            result.received += int(data.get("num_received", len(batch)))
            result.invalid += int(data.get("num_invalid_entries", 0))
        return result

    def check_credentials(self) -> None:
        params = {"fields": "id,name", **self._proof()}
        try:
            response = self._client.get(self._url, params=params, headers=self._headers(),
                                        timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise CredentialsError(
                f"facebook_audience: the Graph API is not reachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise CredentialsError(f"facebook_audience: audience {self.config.audience_id} cannot be read with this "
                                   f"token (HTTP {response.status_code}: {http_call.error_text(response)})")


def regain_access_wait(response: httpx.Response) -> float | None:
    """Seconds until Meta lets us call again: the largest ``estimated_time_to_regain_access`` (minutes) of the
    ``X-Business-Use-Case-Usage`` header, ``{"<business id>": [{"type": "custom_audience", ...}]}``."""
    raw = response.headers.get(USAGE_HEADER)
    if not raw:
        return None
    try:
        usage = json.loads(raw)
    except ValueError:
        return None
    minutes = [float(entry.get("estimated_time_to_regain_access") or 0)
               for entries in (usage.values() if isinstance(usage, dict) else [])
               for entry in (entries if isinstance(entries, list) else []) if isinstance(entry, dict)]
    return max(minutes) * 60 if minutes and max(minutes) > 0 else None


def _throttled(response: httpx.Response) -> bool:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and (error.get("code") in TRANSIENT_CODES or error.get("is_transient") is True)
