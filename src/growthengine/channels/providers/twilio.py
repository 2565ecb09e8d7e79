"""SMS through Twilio's Messages API, and its status callbacks.

``POST {base}/2010-04-01/Accounts/{sid}/Messages.json`` with HTTP basic auth (account SID, auth token).

Idempotency: Twilio's Messages API takes no idempotency key. Our message id rides in the status callback URL
(``StatusCallback=...?message_id=<id>``), so every status callback names the message it is about. Callbacks are
verified with ``X-Twilio-Signature`` (base64 HMAC-SHA1 with the auth token over the full URL plus the POST
parameters sorted by name); the webhook route must pass the public URL Twilio called under
``x-growth-request-url`` (see :data:`REQUEST_URL_HEADER`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
from pydantic import SecretStr, model_validator

from growthengine.channels.providers import http_call
from growthengine.channels.providers.base import (
    REQUEST_URL_HEADER,
    CredentialsError,
    Delivery,
    DeliveryEvent,
    EventStatus,
    OutboundMessage,
    WebhookRejected,
    header,
)
from growthengine.channels.providers.config import ProviderConfig
from growthengine.channels.providers.sms_segments import sms_segments
from growthengine.clock import RealClock

__all__ = ["TwilioConfig", "TwilioProvider", "sms_segments", "twilio_signature"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
CALLBACK_PARAM = "message_id"
# Error codes that say the number itself cannot get SMS: not a valid number, not a mobile, not reachable.
DEAD_NUMBER_CODES = frozenset({21211, 21214, 21217, 21407, 21614})
STATUSES: dict[str, EventStatus] = {"delivered": "delivered", "undelivered": "failed", "failed": "failed",
                                    "read": "opened"}


class TwilioConfig(ProviderConfig):
    account_sid: str
    auth_token: SecretStr
    from_number: str | None = None
    messaging_service_sid: str | None = None
    base_url: str = "https://api.twilio.com"
    # The public URL of our Twilio webhook; without it Twilio sends no status callbacks.
    status_callback_url: str | None = None

    @model_validator(mode="after")
    def _sender(self) -> TwilioConfig:
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError("set from_number or messaging_service_sid")
        return self


def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's request signature: base64 HMAC-SHA1 of the URL followed by ``name + value`` for each parameter,
    sorted by name, then value (a value repeated under one name counts once, as Twilio's own libraries do)."""
    data = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class TwilioProvider:
    channel = "sms"
    name = "twilio"

    def __init__(self, config: TwilioConfig, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], dt.datetime] | None = None) -> None:
        self.config = config
        self._client = client or httpx.Client()
        self._sleep = sleep
        self._now = now or RealClock().now
        self._policy = config.retry_policy()
        self._account_url = f"{config.base_url.rstrip('/')}/2010-04-01/Accounts/{config.account_sid}"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **kwargs: Any) -> TwilioProvider:
        return cls(TwilioConfig.from_settings(settings), **kwargs)

    def close(self) -> None:
        self._client.close()

    def _auth(self) -> tuple[str, str]:
        return self.config.account_sid, self.config.auth_token.get_secret_value()

    def form(self, msg: OutboundMessage) -> dict[str, str]:
        """The Messages API form for ``msg``."""
        form = {"To": msg.to, "Body": msg.body}
        if self.config.messaging_service_sid:
            form["MessagingServiceSid"] = self.config.messaging_service_sid
        else:
            assert self.config.from_number is not None
            form["From"] = self.config.from_number
        if self.config.status_callback_url:
            separator = "&" if "?" in self.config.status_callback_url else "?"
            form["StatusCallback"] = (f"{self.config.status_callback_url}{separator}"
                                      f"{urlencode({CALLBACK_PARAM: msg.id})}")
        return form

    def send(self, msg: OutboundMessage) -> Delivery:
        log.debug("twilio: message %s is %d segment(s)", msg.id, sms_segments(msg.body))
        result = http_call.call(self._client, "POST", f"{self._account_url}/Messages.json", service="twilio",
                                policy=self._policy, sleep=self._sleep, message_id=msg.id,
                                data=self.form(msg), auth=self._auth(), describe=_describe)
        body = result.json()
        if result.ok:
            sid = body.get("sid") if isinstance(body, dict) else None
            return Delivery.sent(self.name, str(sid) if sid else None)
        assert result.error is not None
        code = body.get("code") if isinstance(body, dict) else None
        return Delivery.failed(self.name, result.error, permanent=result.permanent,
                               invalid_address=result.permanent and code in DEAD_NUMBER_CODES)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        url = header(headers, REQUEST_URL_HEADER)
        signature = header(headers, SIGNATURE_HEADER)
        if not url:
            raise WebhookRejected(f"the route did not pass the request URL ({REQUEST_URL_HEADER})")
        if not signature:
            raise WebhookRejected("the request is not signed")
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError):
            raise WebhookRejected("the body is not a form") from None
        token = self.config.auth_token.get_secret_value()
        given = signature.encode("utf-8", "replace")
        if not any(hmac.compare_digest(twilio_signature(token, candidate, params).encode("ascii"), given)
                   for candidate in _url_variants(url)):
            raise WebhookRejected("the signature does not match")
        form = dict(params)
        if form.get("AccountSid") not in (None, self.config.account_sid):
            raise WebhookRejected("the callback is for another account")
        raw_type = form.get("MessageStatus") or form.get("SmsStatus") or ""
        status = STATUSES.get(raw_type)
        ids = parse_qs(urlsplit(url).query).get(CALLBACK_PARAM) or []
        message_id = ids[0] if ids else None
        if status is None or not message_id:
            return []  # queued / sending / sent, or a message we did not send
        reason = f"error {form['ErrorCode']}" if form.get("ErrorCode") else None
        return [DeliveryEvent(message_id, status, self._now(), self.name, reason, raw_type)]

    def check_credentials(self) -> None:
        try:
            response = self._client.get(f"{self._account_url}.json", auth=self._auth(),
                                        timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise CredentialsError(f"twilio: the API is not reachable ({type(exc).__name__})") from None
        if response.status_code in (401, 403, 404):
            raise CredentialsError(f"twilio: account {self.config.account_sid} refused the auth token")
        if response.status_code != 200:
            raise CredentialsError(f"twilio: checking the account gave HTTP {response.status_code}")
        status = response.json().get("status")
        if status not in (None, "active"):
            raise CredentialsError(f"twilio: account {self.config.account_sid} is {status}")


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its port and with the scheme's default port: Twilio signs one of these."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url, parts._replace(netloc=host).geturl()]
    if parts.port is None and default is not None:
        variants.append(parts._replace(netloc=f"{host}:{default}").geturl())
    return list(dict.fromkeys(variants))


def _describe(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if not isinstance(body, dict):
        return response.reason_phrase
    code, message = body.get("code"), str(body.get("message") or "")[:200]
    return f"{code}: {message}" if code else message or response.reason_phrase
