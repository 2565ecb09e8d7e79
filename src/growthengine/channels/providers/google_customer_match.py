"""Google Ads Customer Match sync, through an offline user data job (the REST shape of the Google Ads API).

1. ``POST {base}/{version}/customers/{cid}/offlineUserDataJobs:create`` (type ``CUSTOMER_MATCH_USER_LIST``),
2. ``POST {base}/{version}/{job}:addOperations`` with ``create`` (add) or ``remove`` operations of
   ``{"userIdentifiers": [{"hashedEmail": sha256}]}``, up to ``batch_size`` a request,
3. ``POST {base}/{version}/{job}:run``.

Idempotency: the job's ``externalId`` is derived from our key, so a repeated sync is recognisable as the same
job; members are a set anyway. Requests are paced by a token bucket and retried on 5xx and 429 (honouring
``Retry-After``). The token is OAuth2: a service account (google-auth) or a token minted elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from growthengine.channels.providers import http_call
from growthengine.channels.providers.audience import (
    Action,
    AudienceProvider,
    AudienceSyncResult,
    batched,
    key_number,
)
from growthengine.channels.providers.base import CredentialsError
from growthengine.channels.providers.config import ProviderConfig
from growthengine.channels.providers.google_token import (
    ADWORDS_SCOPE,
    ServiceAccountToken,
    StaticToken,
    TokenSource,
    TokenUnavailable,
)
from growthengine.channels.providers.rate_limit import TokenBucket


class GoogleCustomerMatchConfig(ProviderConfig):
    customer_id: str
    user_list_id: str = Field(pattern=r"^[0-9]+$")
    developer_token: SecretStr
    login_customer_id: str | None = None
    access_token: SecretStr | None = None
    service_account: dict[str, Any] | None = None
    base_url: str = "https://googleads.googleapis.com"
    api_version: str = "v21"
    batch_size: int = Field(default=10_000, ge=1, le=100_000)
    requests_per_s: float = Field(default=2.0, gt=0)
    burst: int = Field(default=2, ge=1)

    @field_validator("customer_id", "login_customer_id")
    @classmethod
    def _digits(cls, value: str | None) -> str | None:
        return value.replace("-", "") if value else value

    @model_validator(mode="after")
    def _one_credential(self) -> GoogleCustomerMatchConfig:
        if self.access_token is None and self.service_account is None:
            raise ValueError("set service_account (the service account key JSON) or access_token")
        return self


class GoogleCustomerMatchProvider(AudienceProvider):
    name = "google_customer_match"

    def __init__(self, config: GoogleCustomerMatchConfig, *, client: httpx.Client | None = None,
                 tokens: TokenSource | None = None, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, limiter: TokenBucket | None = None) -> None:
        self.config = config
        self._client = client or httpx.Client()
        self._sleep = sleep
        self._policy = config.retry_policy()
        self._limiter = limiter or TokenBucket(config.requests_per_s, config.burst, clock=monotonic, sleep=sleep)
        self._tokens = tokens or _token_source(config, self._client)
        self._base = f"{config.base_url.rstrip('/')}/{config.api_version}"
        self._customer = f"customers/{config.customer_id}"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **kwargs: Any) -> GoogleCustomerMatchProvider:
        return cls(GoogleCustomerMatchConfig.from_settings(settings), **kwargs)

    def close(self) -> None:
        self._client.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._tokens.token()}",
                   "developer-token": self.config.developer_token.get_secret_value()}
        if self.config.login_customer_id:
            headers["login-customer-id"] = self.config.login_customer_id
        return headers

    def _post(self, path: str, body: Any, key: str) -> http_call.HttpResult:
        self._limiter.acquire()
        return http_call.call(self._client, "POST", f"{self._base}/{path}", service="google_customer_match",
                              policy=self._policy, sleep=self._sleep, message_id=key[:40], json=body,
                              headers=self._headers())

    def _sync(self, action: Action, hashes: list[str], key: str) -> AudienceSyncResult:
        result = AudienceSyncResult(action, len(hashes))
        try:
            job = {"type": "CUSTOMER_MATCH_USER_LIST", "externalId": str(key_number(key)),
                   "customerMatchUserListMetadata": {
                       "userList": f"{self._customer}/userLists/{self.config.user_list_id}"}}
            answer = self._post(f"{self._customer}/offlineUserDataJobs:create", {"job": job}, key)
            resource = (answer.json() or {}).get("resourceName") if answer.ok else None
            if not answer.ok or not resource:
                return _failed(result, answer, "the job was created without a resourceName")
            result.reference = str(resource)
            operation = "remove" if action == "remove" else "create"
            for batch in batched(hashes, self.config.batch_size):
                body = {"operations": [{operation: {"userIdentifiers": [{"hashedEmail": h}]}} for h in batch],
                        "enablePartialFailure": True}
                answer = self._post(f"{resource}:addOperations", body, key)
                if not answer.ok:
                    return _failed(result, answer)
                result.batches += 1
                result.received += len(batch)
                result.invalid += _partial_failures(answer.json())
            answer = self._post(f"{resource}:run", {}, key)
            if not answer.ok:
                return _failed(result, answer)
        except TokenUnavailable as exc:
            result.errors.append(f"credentials: {exc}")
        return result

    def check_credentials(self) -> None:
        try:
            headers = self._headers()
        except TokenUnavailable as exc:
            raise CredentialsError(f"google_customer_match: no access token: {exc}") from None
        list_id = int(self.config.user_list_id)  # a number: nothing else can reach the query
        query = f"SELECT user_list.id, user_list.name FROM user_list WHERE user_list.id = {list_id}"  # noqa: S608
        try:
            response = self._client.post(f"{self._base}/{self._customer}/googleAds:search", json={"query": query},
                                         headers=headers, timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise CredentialsError(f"google_customer_match: the API is not reachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise CredentialsError(f"google_customer_match: customer {self.config.customer_id} refused the query "
                                   f"(HTTP {response.status_code}: {http_call.error_text(response)})")
        if not response.json().get("results"):
            raise CredentialsError(f"google_customer_match: user list {self.config.user_list_id} was not found")


def _token_source(config: GoogleCustomerMatchConfig, client: httpx.Client) -> TokenSource:
    if config.access_token is not None:
        return StaticToken(config.access_token.get_secret_value())
    assert config.service_account is not None
    return ServiceAccountToken(config.service_account, [ADWORDS_SCOPE], client, config.timeout_s)


def _failed(result: AudienceSyncResult, answer: http_call.HttpResult, fallback: str = "failed") -> AudienceSyncResult:
    result.errors.append(answer.error or fallback)
    result.permanent = answer.permanent or answer.ok
    return result


def _partial_failures(data: Any) -> int:
    """How many operations Google refused in a partial-failure answer."""
    failure = data.get("partialFailureError") if isinstance(data, dict) else None
    if not isinstance(failure, dict):
        return 0
    count = 0
    for detail in failure.get("details") or []:
        if isinstance(detail, dict):
            count += len(detail.get("errors") or [])
    return count or 1
