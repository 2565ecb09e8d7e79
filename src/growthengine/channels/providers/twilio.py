"""SMS through Twilio's Messages API (2010-04-01), and its status callbacks.

``POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json``, form encoded, HTTP basic auth with an API key
(``api_key_sid`` SK..., ``api_key_secret``: what Twilio recommends for production) or the account SID and auth token.

Idempotency: Twilio's Messages API takes no idempotency key. Our message id rides in the status callback URL
(``StatusCallback=...?message_id=<id>``), so every status callback names the message it is about. The callback URL
is ``status_callback_url``, else ``{GROWTH_PUBLIC_URL}/webhooks/twilio`` when the public URL is not a loopback one.
Callbacks are verified with ``X-Twilio-Signature`` (base64 HMAC-SHA1 under the account's auth token, whatever
credential sends, over the full URL plus the POST parameters sorted by name) against each URL the webhook route
says Twilio may have called (the public URL first, see :data:`REQUEST_URLS_HEADER`), so they verify behind a
TLS-terminating proxy. Twilio signs no timestamp: a replay is refused by remembering the message SID and status.

Error 21610 (the recipient texted STOP to this sender) is an unsubscribe for SMS, not a dead number: the send
fails permanently with ``unsubscribed`` set, and a status callback carrying it gives an ``unsubscribed`` event.
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
from growthengine.channels.providers.api_versions import pinned
from growthengine.channels.providers.base import (
    REQUEST_URLS_HEADER,
    CredentialsError,
    Delivery,
    DeliveryEvent,
    EventStatus,
    OutboundMessage,
    WebhookRejected,
    header,
    request_urls,
)
from growthengine.channels.providers.config import ProviderConfig
from growthengine.channels.providers.sms_segments import sms_segments
from growthengine.clock import RealClock

__all__ = ["TwilioConfig", "TwilioProvider", "sms_segments", "twilio_signature"]

log = logging.getLogger(__name__)

API_VERSION = pinned("twilio_messaging")  # 2010-04-01: see api_versions.py
SIGNATURE_HEADER = "X-Twilio-Signature"
CALLBACK_PARAM = "message_id"
# Error codes that say the number itself cannot get SMS: not a valid number, not a mobile, not reachable.
DEAD_NUMBER_CODES = frozenset({21211, 21214, 21217, 21407, 21614})
# The recipient replied STOP (or another opt-out keyword) to this sender: Twilio blocks sends until they opt back in.
UNSUBSCRIBED_CODE = 21610
STATUSES: dict[str, EventStatus] = {"delivered": "delivered", "undelivered": "failed", "failed": "failed",
                                    "read": "opened"}


class TwilioConfig(ProviderConfig):
    account_sid: str
    # The account's auth token: signs the status callbacks (so it is needed to trust them), and may send.
    auth_token: SecretStr | None = None
    # An API key (SK...) and its secret: used to send when given (revocable, unlike the auth token).
    api_key_sid: str | None = None
    api_key_secret: SecretStr | None = None
    from_number: str | None = None
    messaging_service_sid: str | None = None
    base_url: str = "https://api.twilio.com"
    # The public URL of our Twilio webhook; by default {GROWTH_PUBLIC_URL}/webhooks/twilio (not on loopback).
    status_callback_url: str | None = None

    @model_validator(mode="after")
    def _sender(self) -> TwilioConfig:
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError("set from_number or messaging_service_sid")
        if (self.api_key_sid is None) != (self.api_key_secret is None):
            raise ValueError("set both api_key_sid and api_key_secret, or neither")
        if self.auth_token is None and self.api_key_sid is None:
            raise ValueError("set api_key_sid and api_key_secret, or auth_token")
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
                 now: Callable[[], dt.datetime] | None = None, public_url: str | None = None) -> None:
        self.config = config
        self._client = client or httpx.Client()
        self._sleep = sleep
        self._now = now or RealClock().now
        self._policy = config.retry_policy()
        self._account_url = f"{config.base_url.rstrip('/')}/{API_VERSION}/Accounts/{config.account_sid}"
        self.status_callback_url = config.status_callback_url or _public_callback(public_url)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **kwargs: Any) -> TwilioProvider:
        return cls(TwilioConfig.from_settings(settings), **kwargs)

    def close(self) -> None:
        self._client.close()

    def _auth(self) -> tuple[str, str]:
        if self.config.api_key_sid and self.config.api_key_secret:
            return self.config.api_key_sid, self.config.api_key_secret.get_secret_value()
        assert self.config.auth_token is not None
        return self.config.account_sid, self.config.auth_token.get_secret_value()

    def form(self, msg: OutboundMessage) -> dict[str, str]:
        """The Messages API form for ``msg``."""
        form = {"To": msg.to, "Body": msg.body}
        if self.config.messaging_service_sid:
            form["MessagingServiceSid"] = self.config.messaging_service_sid
        else:
            assert self.config.from_number is not None
            form["From"] = self.config.from_number
        if self.status_callback_url:
            separator = "&" if "?" in self.status_callback_url else "?"
            form["StatusCallback"] = f"{self.status_callback_url}{separator}{urlencode({CALLBACK_PARAM: msg.id})}"
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
        if result.permanent and code == UNSUBSCRIBED_CODE:
            log.info("twilio: the recipient of message %s opted out (21610)", msg.id)
            return Delivery.failed(self.name, result.error, permanent=True, unsubscribed=True)
        return Delivery.failed(self.name, result.error, permanent=result.permanent,
                               invalid_address=result.permanent and code in DEAD_NUMBER_CODES)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        urls = request_urls(headers)
        signature = header(headers, SIGNATURE_HEADER)
        if not urls:
            raise WebhookRejected(f"the route did not pass the request URL ({REQUEST_URLS_HEADER})")
        if self.config.auth_token is None:
            raise WebhookRejected("no auth_token is set, so no status callback can be trusted (Twilio signs "
                                  "callbacks with the account's auth token, not with API keys)")
        if not signature:
            raise WebhookRejected("the request is not signed")
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError):
            raise WebhookRejected("the body is not a form") from None
        token = self.config.auth_token.get_secret_value()
        given = signature.encode("utf-8", "replace")
        signed_url = next((candidate for url in urls for candidate in _url_variants(url)
                           if hmac.compare_digest(twilio_signature(token, candidate, params).encode("ascii"), given)),
                          None)
        if signed_url is None:
            raise WebhookRejected("the signature does not match (is GROWTH_PUBLIC_URL the URL Twilio calls?)")
        form = dict(params)
        if form.get("AccountSid") not in (None, self.config.account_sid):
            raise WebhookRejected("the callback is for another account")
        raw_type = form.get("MessageStatus") or form.get("SmsStatus") or ""
        status = STATUSES.get(raw_type)
        ids = parse_qs(urlsplit(signed_url).query).get(CALLBACK_PARAM) or []
        message_id = ids[0] if ids else None
        if status is None or not message_id:
            return []  # queued / sending / sent, or a message we did not send
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        code = form.get("ErrorCode") or ""
        reason = f"error {code}" if code else None
        key = f"{sid or message_id}:{raw_type}"
        events = [DeliveryEvent(message_id, status, self._now(), self.name, reason, raw_type, event_id=key)]
        if code == str(UNSUBSCRIBED_CODE):
            events.append(DeliveryEvent(message_id, "unsubscribed", self._now(), self.name, "error 21610", raw_type,
                                        event_id=f"{key}:unsubscribed"))
        return events

    def check_credentials(self) -> None:
        try:
            response = self._client.get(f"{self._account_url}.json", auth=self._auth(),
                                        timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise CredentialsError(f"twilio: the API is not reachable ({type(exc).__name__})") from None
        if response.status_code in (401, 403, 404):
            what = "API key" if self.config.api_key_sid else "auth token"
            raise CredentialsError(f"twilio: account {self.config.account_sid} refused the {what}")
        if response.status_code != 200:
            raise CredentialsError(f"twilio: checking the account gave HTTP {response.status_code}")
        status = response.json().get("status")
        if status not in (None, "active"):
            raise CredentialsError(f"twilio: account {self.config.account_sid} is {status}")


def _public_callback(public_url: str | None) -> str | None:
    """``{public_url}/webhooks/twilio``, unless the public URL is a loopback one Twilio could never reach."""
    if not public_url:
        return None
    host = (urlsplit(public_url).hostname or "").lower()
    if host in ("localhost", "::1") or host.startswith("127."):
        return None
    return f"{public_url.rstrip('/')}/webhooks/twilio"


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
