"""Push through Firebase Cloud Messaging, HTTP v1 API.

``POST {base}/v1/projects/{project}/messages:send`` with an OAuth2 bearer token from a service account.

Idempotency: FCM v1 takes no idempotency key. Our message id is sent as ``data.message_id`` and as the
notification's replacement key (Android ``notification.tag``, APNs ``apns-collapse-id``), so a repeated send
replaces the notification on the device instead of showing it twice. FCM has no delivery webhooks: opens come
back from the app as ``message_opened`` events, so :meth:`FcmProvider.parse_webhook` rejects every request.

Dead tokens (the worker clears them): ``UNREGISTERED`` (404), ``SENDER_ID_MISMATCH`` (403: the token belongs to
another Firebase project's sender) and ``INVALID_ARGUMENT`` naming the token. ``THIRD_PARTY_AUTH_ERROR`` (401) is
the APNs key or web push credential in the Firebase project, not our OAuth token: it is not refreshed for it, and
the send fails permanently. ``ttl_s`` bounds delivery on every platform: Android ``ttl``, APNs ``apns-expiration``
(an absolute Unix time, from system time) and web push ``TTL``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import Field, SecretStr, model_validator

from growthengine.channels.providers import http_call
from growthengine.channels.providers.api_versions import pinned
from growthengine.channels.providers.base import (
    CredentialsError,
    Delivery,
    DeliveryEvent,
    OutboundMessage,
    WebhookRejected,
)
from growthengine.channels.providers.config import ProviderConfig
from growthengine.channels.providers.google_token import (
    FCM_SCOPE,
    ServiceAccountToken,
    StaticToken,
    TokenSource,
    TokenUnavailable,
)
from growthengine.clock import RealClock

log = logging.getLogger(__name__)

API_VERSION = pinned("fcm_http")  # v1: see api_versions.py
# Token errors: the address is dead (UNREGISTERED), or not a token at all (INVALID_ARGUMENT naming the token).
DEAD_TOKEN_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
# The Firebase project's APNs certificate/key or web push credential is missing or refused (HTTP 401).
THIRD_PARTY_AUTH = "THIRD_PARTY_AUTH_ERROR"


class FcmConfig(ProviderConfig):
    """``service_account`` is the JSON key's content; ``access_token`` instead is for emulators."""

    project_id: str | None = None
    service_account: dict[str, Any] | None = None
    access_token: SecretStr | None = None
    base_url: str = "https://fcm.googleapis.com"
    android_channel_id: str | None = None
    # How long a push may wait for an offline device (0: now or never; FCM's own default is 4 weeks).
    ttl_s: int | None = Field(default=None, ge=0, le=2_419_200)

    @model_validator(mode="after")
    def _one_credential(self) -> FcmConfig:
        if self.service_account is None and self.access_token is None:
            raise ValueError("set service_account (the service account key JSON) or access_token")
        if self.project_id is None and not (self.service_account or {}).get("project_id"):
            raise ValueError("set project_id (or use a service account key that names its project)")
        return self


class FcmProvider:
    channel = "push"
    name = "fcm"

    def __init__(self, config: FcmConfig, *, client: httpx.Client | None = None,
                 tokens: TokenSource | None = None, sleep: Callable[[float], None] = time.sleep,
                 system_now: Callable[[], dt.datetime] | None = None) -> None:
        self.config = config
        self._client = client or httpx.Client()
        self._sleep = sleep
        self._system_now = system_now or RealClock().now  # apns-expiration is an absolute, real time
        self._policy = config.retry_policy()
        self._tokens = tokens or _token_source(config, self._client)
        project = config.project_id or str((config.service_account or {}).get("project_id"))
        self._url = f"{config.base_url.rstrip('/')}/{API_VERSION}/projects/{project}/messages:send"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **kwargs: Any) -> FcmProvider:
        return cls(FcmConfig.from_settings(settings), **kwargs)

    def close(self) -> None:
        self._client.close()

    def payload(self, msg: OutboundMessage) -> dict[str, Any]:
        """The FCM v1 request body for ``msg``."""
        high = msg.urgency == "high"
        notification: dict[str, Any] = {"body": msg.body}
        if msg.title:
            notification["title"] = msg.title
        if msg.image_url:
            notification["image"] = msg.image_url
        data = {str(k): v if isinstance(v, str) else str(v) for k, v in msg.data.items()}
        data.update({"message_id": msg.id, "kind": msg.kind})
        android_notification = {"tag": msg.id}
        if self.config.android_channel_id:
            android_notification["channel_id"] = self.config.android_channel_id
        android: dict[str, Any] = {"priority": "HIGH" if high else "NORMAL", "notification": android_notification}
        if self.config.ttl_s is not None:
            android["ttl"] = f"{self.config.ttl_s}s"
        apns_headers = {"apns-priority": "10" if high else "5", "apns-collapse-id": msg.id[:64]}
        apns: dict[str, Any] = {
            "headers": apns_headers,
            "payload": {"aps": {"mutable-content": 1}} if msg.image_url else {"aps": {}},
        }
        if msg.image_url:
            apns["fcm_options"] = {"image": msg.image_url}
        message: dict[str, Any] = {"token": msg.to, "notification": notification, "data": data,
                                   "android": android, "apns": apns}
        if self.config.ttl_s is not None:
            ttl = self.config.ttl_s
            # APNs: "0" is deliver now or never; otherwise the Unix time after which APNs stops trying.
            apns_headers["apns-expiration"] = "0" if ttl == 0 else str(int(self._system_now().timestamp()) + ttl)
            message["webpush"] = {"headers": {"TTL": str(ttl), "Urgency": "high" if high else "normal"}}
        return {"message": message}

    def send(self, msg: OutboundMessage) -> Delivery:
        payload = self.payload(msg)
        result: http_call.HttpResult | None = None
        for force_refresh in (False, True):  # one fresh token after a 401 (a revoked or expired token)
            try:
                token = self._tokens.token(force_refresh=force_refresh)
            except TokenUnavailable as exc:
                log.warning("fcm: no access token for message %s: %s", msg.id, exc)
                return Delivery.failed(self.name, f"credentials: {exc}", permanent=False)
            result = http_call.call(self._client, "POST", self._url, service="fcm", policy=self._policy,
                                    sleep=self._sleep, message_id=msg.id, json=payload,
                                    headers={"Authorization": f"Bearer {token}"}, describe=_describe)
            if result.status != 401 or THIRD_PARTY_AUTH in _error_codes(result.json()):
                break  # a refresh only helps our own OAuth token, not the project's APNs / web push credential
        assert result is not None
        if result.ok:
            body = result.json()
            name = body.get("name") if isinstance(body, dict) else None
            return Delivery.sent(self.name, str(name) if name else None)
        assert result.error is not None
        return Delivery.failed(self.name, result.error, permanent=result.permanent,
                               invalid_address=result.permanent and _dead_token(result.json()))

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        raise WebhookRejected("fcm sends no delivery webhooks; push opens come from the app as message_opened")

    def check_credentials(self) -> None:
        try:
            self._tokens.token(force_refresh=True)
        except TokenUnavailable as exc:
            raise CredentialsError(f"fcm: could not get an access token for the service account: {exc}") from None
        # A dry run to a token that cannot exist: 400 INVALID_ARGUMENT proves the project and the token are
        # accepted; 401/403/404 mean the service account may not send for this project.
        probe = {"validate_only": True, "message": {"token": "growth-credentials-check", "data": {"check": "1"}}}
        result = http_call.call(self._client, "POST", self._url, service="fcm", policy=self._policy,
                                sleep=self._sleep, json=probe,
                                headers={"Authorization": f"Bearer {self._tokens.token()}"}, describe=_describe)
        if result.status in (401, 403, 404):
            raise CredentialsError(f"fcm: the service account may not send for this project ({result.error})")
        if result.status is None or result.status >= 500:
            raise CredentialsError(f"fcm: the FCM API is not reachable ({result.error})")


def _token_source(config: FcmConfig, client: httpx.Client) -> TokenSource:
    if config.access_token is not None:
        return StaticToken(config.access_token.get_secret_value())
    assert config.service_account is not None
    return ServiceAccountToken(config.service_account, [FCM_SCOPE], client, config.timeout_s)


def _error(body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _error_codes(body: Any) -> set[str]:
    error = _error(body)
    codes = {str(error.get("status", ""))}
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            codes.add(str(detail["errorCode"]))
    return codes - {""}


def _dead_token(body: Any) -> bool:
    """UNREGISTERED, or INVALID_ARGUMENT about the token itself (not about some other field)."""
    codes = _error_codes(body)
    if codes & DEAD_TOKEN_CODES:
        return True
    if "INVALID_ARGUMENT" not in codes:
        return False
    error = _error(body)
    for detail in error.get("details") or []:
        for violation in (detail.get("fieldViolations") or []) if isinstance(detail, dict) else []:
            if isinstance(violation, dict) and str(violation.get("field", "")).endswith("token"):
                return True
    return "registration token" in str(error.get("message", "")).lower()


def _describe(response: httpx.Response) -> str:
    """``UNREGISTERED: Requested entity was not found.`` from FCM's error body."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    codes = sorted(_error_codes(body) - {"NOT_FOUND"} or _error_codes(body))
    message = str(_error(body).get("message", ""))[:200]
    return ": ".join(p for p in (",".join(codes), message) if p) or response.reason_phrase
