"""Google Customer Match audiences: through the Data Manager API (the default), or the Google Ads API.

**Data Manager API v1** (``api: data_manager``), what Google sends new Customer Match adopters to since April 2026:

- ``POST {base}/v1/audienceMembers:ingest`` with ``destinations`` (the Google Ads account and the user list as
  ``productDestinationId``, the manager account as ``loginAccount``), up to 10,000 ``audienceMembers`` of
  ``{"userData": {"userIdentifiers": [{"emailAddress": <sha256 hex>}]}}``, ``encoding: HEX``, the request's
  ``consent`` (``adUserData``, ``adPersonalization``: EEA members without it are dropped) and ``termsOfService``
  (the Customer Match terms, which ``customer_match_terms_accepted`` confirms were accepted);
- ``POST {base}/v1/audienceMembers:remove`` with the same destinations and members.

Each answers a ``requestId`` (kept as the sync's reference). Adding or removing a member twice changes nothing.

**Google Ads API** (``api: google_ads``), only for developer tokens still allowlisted for Customer Match uploads
(others get ``CUSTOMER_NOT_ALLOWLISTED_FOR_THIS_FEATURE``): an offline user data job, created with an
``externalId`` unique to the attempt (a retry must not reuse one: ``EXTERNAL_UPDATE_ID_ALREADY_EXISTS``), filled
with ``addOperations`` and run; ``409 CONCURRENT_MODIFICATION`` (two workers on one list) is retried.

Requests are paced by a token bucket and retried on 5xx and 429 (honouring ``Retry-After``). The token is OAuth2: a
service account (google-auth) or a token minted elsewhere.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from growthengine.channels.providers import http_call
from growthengine.channels.providers.api_versions import pinned
from growthengine.channels.providers.audience import (
    Action,
    AudienceProvider,
    AudienceSyncResult,
    batched,
    hash_email,
)
from growthengine.channels.providers.base import CredentialsError
from growthengine.channels.providers.config import ProviderConfig
from growthengine.channels.providers.google_token import (
    ADWORDS_SCOPE,
    DATAMANAGER_SCOPE,
    ServiceAccountToken,
    StaticToken,
    TokenSource,
    TokenUnavailable,
)
from growthengine.channels.providers.rate_limit import TokenBucket

DATA_MANAGER_VERSION = pinned("google_data_manager")  # v1: see api_versions.py
GOOGLE_ADS_VERSION = pinned("google_ads")  # v26
MAX_MEMBERS = 10_000
Consent = Literal["CONSENT_GRANTED", "CONSENT_DENIED"]
_BASE = {"data_manager": "https://datamanager.googleapis.com", "google_ads": "https://googleads.googleapis.com"}


class GoogleCustomerMatchConfig(ProviderConfig):
    api: Literal["data_manager", "google_ads"] = "data_manager"
    customer_id: str  # the Google Ads account that owns the list (the operating account)
    user_list_id: str = Field(pattern=r"^[0-9]+$")
    login_customer_id: str | None = None  # a manager account the credentials reach the customer through
    access_token: SecretStr | None = None
    service_account: dict[str, Any] | None = None
    base_url: str | None = None
    # Data Manager API
    operating_account_type: str = "GOOGLE_ADS"
    customer_match_terms_accepted: bool = False
    ad_user_data_consent: Consent = "CONSENT_GRANTED"
    ad_personalization_consent: Consent = "CONSENT_GRANTED"
    # Google Ads API (allowlisted developer tokens only)
    developer_token: SecretStr | None = None
    api_version: str = Field(default=GOOGLE_ADS_VERSION, pattern=r"^v[0-9]+$")
    batch_size: int = Field(default=MAX_MEMBERS, ge=1, le=MAX_MEMBERS)
    requests_per_s: float = Field(default=2.0, gt=0)
    burst: int = Field(default=2, ge=1)

    @field_validator("customer_id", "login_customer_id")
    @classmethod
    def _digits(cls, value: str | None) -> str | None:
        return value.replace("-", "") if value else value

    @model_validator(mode="after")
    def _complete(self) -> GoogleCustomerMatchConfig:
        if self.access_token is None and self.service_account is None:
            raise ValueError("set service_account (the service account key JSON) or access_token")
        if self.api == "google_ads" and self.developer_token is None:
            raise ValueError("the google_ads api needs developer_token (one allowlisted for Customer Match)")
        if self.api == "data_manager" and not self.customer_match_terms_accepted:
            raise ValueError("set customer_match_terms_accepted: true once the Customer Match terms of service "
                             "(https://support.google.com/adspolicy/answer/6299717) are accepted for the account")
        return self


class GoogleCustomerMatchProvider(AudienceProvider):
    name = "google_customer_match"

    def __init__(self, config: GoogleCustomerMatchConfig, *, client: httpx.Client | None = None,
                 tokens: TokenSource | None = None, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, limiter: TokenBucket | None = None,
                 attempt_id: Callable[[], int] | None = None) -> None:
        self.config = config
        self._client = client or httpx.Client()
        self._sleep = sleep
        self._policy = config.retry_policy()
        self._limiter = limiter or TokenBucket(config.requests_per_s, config.burst, clock=monotonic, sleep=sleep)
        self._tokens = tokens or _token_source(config, self._client)
        self._attempt_id = attempt_id or (lambda: secrets.randbits(62) or 1)
        base = (config.base_url or _BASE[config.api]).rstrip("/")
        version = DATA_MANAGER_VERSION if config.api == "data_manager" else config.api_version
        self._base = f"{base}/{version}"
        self._customer = f"customers/{config.customer_id}"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **kwargs: Any) -> GoogleCustomerMatchProvider:
        return cls(GoogleCustomerMatchConfig.from_settings(settings), **kwargs)

    def close(self) -> None:
        self._client.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._tokens.token()}"}
        if self.config.api == "google_ads":
            assert self.config.developer_token is not None
            headers["developer-token"] = self.config.developer_token.get_secret_value()
            if self.config.login_customer_id:
                headers["login-customer-id"] = self.config.login_customer_id
        return headers

    def _post(self, path: str, body: Any, key: str) -> http_call.HttpResult:
        self._limiter.acquire()
        return http_call.call(self._client, "POST", f"{self._base}/{path}", service="google_customer_match",
                              policy=self._policy, sleep=self._sleep, message_id=key[:40], json=body,
                              headers=self._headers(), transient=_concurrent_modification)

    def _sync(self, action: Action, hashes: list[str], key: str) -> AudienceSyncResult:
        try:
            if self.config.api == "data_manager":
                return self._sync_data_manager(action, hashes, key)
            return self._sync_ads_job(action, hashes, key)
        except TokenUnavailable as exc:
            result = AudienceSyncResult(action, len(hashes))
            result.errors.append(f"credentials: {exc}")
            result.permanent = exc.permanent
            return result

    # -- Data Manager API -----------------------------------------------------------------------------------

    def destination(self) -> dict[str, Any]:
        destination: dict[str, Any] = {
            "operatingAccount": {"accountType": self.config.operating_account_type,
                                 "accountId": self.config.customer_id},
            "productDestinationId": self.config.user_list_id,
        }
        if self.config.login_customer_id:
            destination["loginAccount"] = {"accountType": self.config.operating_account_type,
                                           "accountId": self.config.login_customer_id}
        return destination

    def request(self, action: Action, hashes: list[str], *, validate_only: bool = False) -> dict[str, Any]:
        """The ``audienceMembers:ingest`` (add) or ``:remove`` body for these hashed emails."""
        body: dict[str, Any] = {
            "destinations": [self.destination()],
            "audienceMembers": [{"userData": {"userIdentifiers": [{"emailAddress": h}]}} for h in hashes],
            "encoding": "HEX",
        }
        if action == "add":
            body["consent"] = {"adUserData": self.config.ad_user_data_consent,
                               "adPersonalization": self.config.ad_personalization_consent}
            body["termsOfService"] = {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
        if validate_only:
            body["validateOnly"] = True
        return body

    def _sync_data_manager(self, action: Action, hashes: list[str], key: str) -> AudienceSyncResult:
        result = AudienceSyncResult(action, len(hashes))
        method = "audienceMembers:ingest" if action == "add" else "audienceMembers:remove"
        for batch in batched(hashes, self.config.batch_size):
            answer = self._post(method, self.request(action, batch), key)
            if not answer.ok:
                return _failed(result, answer)
            result.batches += 1
            result.received += len(batch)
            request_id = (answer.json() or {}).get("requestId")
            result.reference = str(request_id) if request_id else result.reference
        return result

    # -- Google Ads API (allowlisted tokens) ------------------------------------------------------------------

    def _sync_ads_job(self, action: Action, hashes: list[str], key: str) -> AudienceSyncResult:
        result = AudienceSyncResult(action, len(hashes))
        job = {"type": "CUSTOMER_MATCH_USER_LIST", "externalId": str(self._attempt_id()),
               "customerMatchUserListMetadata": {
                   "userList": f"{self._customer}/userLists/{self.config.user_list_id}",
                   "consent": {"adUserData": self.config.ad_user_data_consent,
                               "adPersonalization": self.config.ad_personalization_consent}}}
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
        return result

    def check_credentials(self) -> None:
        try:
            headers = self._headers()
        except TokenUnavailable as exc:
            raise CredentialsError(f"google_customer_match: no access token: {exc}") from None
        if self.config.api == "data_manager":
            # validateOnly: the destination, the consent and the token are checked; nothing is uploaded.
            probe = self.request("add", [hash_email("growth-credentials-check@example.invalid")], validate_only=True)
            url, body = f"{self._base}/audienceMembers:ingest", probe
        else:
            list_id = int(self.config.user_list_id)  # a number: nothing else can reach the query
            query = f"SELECT user_list.id, user_list.name FROM user_list WHERE user_list.id = {list_id}"  # noqa: S608
            url, body = f"{self._base}/{self._customer}/googleAds:search", {"query": query}
        try:
            response = self._client.post(url, json=body, headers=headers, timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise CredentialsError(f"google_customer_match: the API is not reachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise CredentialsError(f"google_customer_match: customer {self.config.customer_id} refused the "
                                   f"{'validation' if self.config.api == 'data_manager' else 'query'} "
                                   f"(HTTP {response.status_code}: {http_call.error_text(response)})")
        if self.config.api == "google_ads" and not response.json().get("results"):
            raise CredentialsError(f"google_customer_match: user list {self.config.user_list_id} was not found")


def _token_source(config: GoogleCustomerMatchConfig, client: httpx.Client) -> TokenSource:
    if config.access_token is not None:
        return StaticToken(config.access_token.get_secret_value())
    assert config.service_account is not None
    scope = DATAMANAGER_SCOPE if config.api == "data_manager" else ADWORDS_SCOPE
    return ServiceAccountToken(config.service_account, [scope], client, config.timeout_s)


def _concurrent_modification(response: httpx.Response) -> bool:
    """409 ``CONCURRENT_MODIFICATION``/``ABORTED``: another job touched the list at the same time; try again."""
    return response.status_code == 409


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
