"""Email through SendGrid's v3 Mail Send API, and its signed Event Webhook.

Idempotency: SendGrid takes no idempotency key. Our message id goes in ``custom_args.message_id`` (which
SendGrid copies into every event of the Event Webhook, the key events are matched on) and in the header
``X-Growth-Message-Id``. The webhook is verified as SendGrid signs it: ECDSA P-256 with SHA-256 over
timestamp + raw body, headers ``X-Twilio-Email-Event-Webhook-Signature`` and ``-Timestamp``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from pydantic import Field, SecretStr, field_validator

from growthengine.channels.providers import http_call
from growthengine.channels.providers.api_versions import pinned
from growthengine.channels.providers.base import (
    WEBHOOK_MAX_AGE_S,
    CredentialsError,
    Delivery,
    DeliveryEvent,
    EventStatus,
    OutboundMessage,
    WebhookRejected,
    check_fresh,
    header,
    utc_from_unix,
)
from growthengine.channels.providers.config import ProviderConfig
from growthengine.channels.providers.email_headers import MESSAGE_ID_HEADER, unsubscribe_headers
from growthengine.clock import RealClock

log = logging.getLogger(__name__)

API_VERSION = pinned("sendgrid_v3")  # v3: see api_versions.py
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
EVENTS: dict[str, EventStatus] = {
    "delivered": "delivered",
    "bounce": "bounced",
    "dropped": "failed",
    "open": "opened",
    "click": "clicked",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}


class SendGridConfig(ProviderConfig):
    api_key: SecretStr
    from_address: str
    from_name: str | None = None
    base_url: str = "https://api.sendgrid.com"
    # The verification key SendGrid shows for the signed Event Webhook (base64 DER, or PEM).
    webhook_public_key: str | None = None
    # How far the signed timestamp may be from system time: an older (or replayed) request is refused.
    webhook_max_age_s: int = Field(default=WEBHOOK_MAX_AGE_S, ge=30, le=3600)
    unsubscribe_mailto: str | None = None
    asm_group_id: int | None = None

    @field_validator("webhook_public_key")
    @classmethod
    def _loads(cls, value: str | None) -> str | None:
        if value is not None:
            load_public_key(value)
        return value


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key, as base64 DER (what its console shows) or PEM."""
    try:
        raw = text.strip().encode("ascii")
        key = load_pem_public_key(raw) if raw.startswith(b"-----") else load_der_public_key(base64.b64decode(raw))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise ValueError("the webhook public key is not a base64 DER or PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the webhook public key is not an elliptic-curve key")
    return key


class SendGridProvider:
    channel = "email"
    name = "sendgrid"

    def __init__(self, config: SendGridConfig, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 system_now: Callable[[], dt.datetime] | None = None) -> None:
        self.config = config
        self._client = client or httpx.Client()
        self._sleep = sleep
        self._system_now = system_now or RealClock().now  # webhook windows are real time, whatever the engine clock
        self._wait_hint = http_call.ratelimit_reset(lambda: self._system_now().timestamp())
        self._policy = config.retry_policy()
        self._base = config.base_url.rstrip("/")
        self._key = load_public_key(config.webhook_public_key) if config.webhook_public_key else None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **kwargs: Any) -> SendGridProvider:
        return cls(SendGridConfig.from_settings(settings), **kwargs)

    def close(self) -> None:
        self._client.close()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key.get_secret_value()}"}

    def payload(self, msg: OutboundMessage) -> dict[str, Any]:
        """The v3 mail send body for ``msg``."""
        headers = {MESSAGE_ID_HEADER: msg.id}
        if msg.kind == "marketing":
            headers.update(unsubscribe_headers(msg.id, msg.unsubscribe_url, self.config.unsubscribe_mailto))
        sender: dict[str, str] = {"email": self.config.from_address}
        if self.config.from_name:
            sender["name"] = self.config.from_name
        content = [{"type": "text/plain", "value": msg.body or " "}]
        if msg.html:
            content.append({"type": "text/html", "value": msg.html})
        body: dict[str, Any] = {
            "personalizations": [{"to": [{"email": msg.to}], "custom_args": {"message_id": msg.id}}],
            "from": sender,
            "subject": subject_of(msg, self.config.from_name),
            "content": content,
            "headers": headers,
            "categories": [msg.kind],
        }
        if self.config.asm_group_id is not None and msg.kind == "marketing":
            body["asm"] = {"group_id": self.config.asm_group_id}
        return body

    def send(self, msg: OutboundMessage) -> Delivery:
        result = http_call.call(self._client, "POST", f"{self._base}/{API_VERSION}/mail/send", service="sendgrid",
                                policy=self._policy, sleep=self._sleep, message_id=msg.id,
                                json=self.payload(msg), headers=self._auth(), wait_hint=self._wait_hint)
        if result.ok:
            assert result.response is not None
            return Delivery.sent(self.name, result.response.headers.get("X-Message-Id"))
        assert result.error is not None
        return Delivery.failed(self.name, result.error, permanent=result.permanent)

    def verify(self, headers: Mapping[str, str], body: bytes) -> dt.datetime:
        """The signed time, if SendGrid signed this request within the window; :class:`WebhookRejected` otherwise."""
        if self._key is None:
            raise WebhookRejected("no webhook_public_key is set, so no webhook can be trusted")
        signature, timestamp = header(headers, SIGNATURE_HEADER), header(headers, TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise WebhookRejected("the request is not signed")
        try:
            raw_signature = base64.b64decode(signature, validate=True)
            self._key.verify(raw_signature, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature):
            raise WebhookRejected("the signature does not match") from None
        try:
            signed_at = utc_from_unix(int(timestamp))
        except (ValueError, OverflowError, OSError):
            raise WebhookRejected("the signature timestamp is not a number") from None
        check_fresh(signed_at, self._system_now(), self.config.webhook_max_age_s)
        return signed_at

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        signed_at = self.verify(headers, body)
        try:
            items = json.loads(body)
        except ValueError:
            raise WebhookRejected("the body is not JSON") from None
        if not isinstance(items, list):
            raise WebhookRejected("the body is not a list of events")
        events = []
        for item in items:
            if not isinstance(item, dict):
                raise WebhookRejected("an event is not an object")
            raw_type = str(item.get("event", ""))
            status = EVENTS.get(raw_type)
            message_id = item.get("message_id")
            if status is None or not isinstance(message_id, str) or not message_id:
                continue  # processed / deferred / resubscribe, or a mail we did not send
            try:
                at = utc_from_unix(float(item["timestamp"]))
            except (KeyError, TypeError, ValueError):
                raise WebhookRejected(f"a {raw_type} event has no timestamp") from None
            event_id = item.get("sg_event_id")
            events.append(DeliveryEvent(message_id, status, at, self.name, _reason(raw_type, item), raw_type,
                                        event_id=str(event_id) if event_id else None, signed_at=signed_at))
        return events

    def check_credentials(self) -> None:
        try:
            response = self._client.get(f"{self._base}/{API_VERSION}/scopes", headers=self._auth(),
                                        timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise CredentialsError(f"sendgrid: the API is not reachable ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise CredentialsError("sendgrid: the API key was refused")
        if response.status_code != 200:
            raise CredentialsError(f"sendgrid: checking the API key gave HTTP {response.status_code}")
        scopes = response.json().get("scopes", [])
        if "mail.send" not in scopes:
            raise CredentialsError("sendgrid: the API key lacks the mail.send permission")


def subject_of(msg: OutboundMessage, fallback: str | None = None) -> str:
    """The subject, else the title, else the body's first line (SendGrid refuses an empty subject with a 400)."""
    for candidate in (msg.subject, msg.title, (msg.body or "").strip().split("\n", 1)[0]):
        text = " ".join((candidate or "").split())
        if text:
            return text if len(text) <= 78 else text[:77].rstrip() + "…"
    return fallback or "-"


def _reason(raw_type: str, item: dict[str, Any]) -> str | None:
    """A reason without personal data: the bounce class and status code, the drop reason."""
    if raw_type == "bounce":
        return "/".join(str(p) for p in (item.get("type") or "bounce", item.get("status")) if p)
    if raw_type == "dropped":
        return str(item.get("reason") or "dropped")[:100]
    return None
