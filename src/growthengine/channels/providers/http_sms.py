"""SMS through any HTTP gateway (the local Thai ones: a URL, a body template, credentials).

The body is a template whose strings may hold ``{to}``, ``{text}``, ``{sender}``, ``{message_id}`` and
``{segments}``; a string that is exactly one placeholder takes the value itself (``{segments}`` stays a number).
It is sent as JSON (``body_format: json``) or as an HTML form (``form``, flat templates only), with HTTP Basic auth
(``username`` / ``password``) or a header (``auth_header`` / ``auth_value``), or both.

Idempotency: the message id is sent in the ``Idempotency-Key`` header (name configurable, or off) and, in the
default template, as ``reference``, which gateways echo in their delivery reports. Delivery reports are JSON (one
report or a list) or a form, read by the fields configured, and verified by a pluggable verifier
(``webhook_verifier``): ``hmac`` (HMAC-SHA256 of the raw body under ``webhook_secret``, hex or base64, in
``webhook_signature_header``), ``token`` (``webhook_secret`` as the value of that header or of the query parameter
``webhook_token_param`` of the report URL), ``basic`` (the gateway calls with Basic auth ``webhook_username`` /
``webhook_secret``), or ``module:function`` (a factory taking the config and returning a ``Verifier``). A report is
remembered by its message id and status (or ``webhook_event_id_field``), so a replay changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import importlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
from pydantic import Field, SecretStr, model_validator

from growthengine.channels.providers import http_call
from growthengine.channels.providers.base import (
    CredentialsError,
    Delivery,
    DeliveryEvent,
    EventStatus,
    OutboundMessage,
    WebhookRejected,
    header,
    request_urls,
    utc_from_iso,
    utc_from_unix,
)
from growthengine.channels.providers.config import ProviderConfig
from growthengine.channels.providers.sms_segments import sms_segments
from growthengine.clock import RealClock

log = logging.getLogger(__name__)

PLACEHOLDERS = ("to", "text", "sender", "message_id", "segments")
DEFAULT_REPORT_STATUSES: dict[str, EventStatus] = {
    "delivered": "delivered", "failed": "failed", "undelivered": "failed", "rejected": "failed", "expired": "failed"}

# Checks that a delivery report came from the gateway: raises WebhookRejected otherwise.
Verifier = Callable[[Mapping[str, str], bytes], None]


class HttpSmsConfig(ProviderConfig):
    url: str
    method: Literal["POST", "PUT"] = "POST"
    body_template: dict[str, Any] = Field(default_factory=lambda: {
        "to": "{to}", "text": "{text}", "sender": "{sender}", "reference": "{message_id}"})
    body_format: Literal["json", "form"] = "json"
    sender: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    auth_header: str = "Authorization"
    auth_value: SecretStr | None = None
    username: str | None = None  # HTTP Basic auth, with password
    password: SecretStr | None = None
    idempotency_header: str | None = "Idempotency-Key"
    # How the gateway wants the number: +66812345678 (e164), 66812345678 (digits), 0812345678 (national_th).
    phone_format: Literal["e164", "digits", "national_th"] = "e164"
    # Dotted path to the gateway's own id in its JSON answer.
    id_field: str | None = "id"
    webhook_verifier: str = "hmac"  # hmac | token | basic | module:function
    webhook_secret: SecretStr | None = None
    webhook_signature_header: str = "X-Signature"
    webhook_signature_encoding: Literal["hex", "base64"] = "hex"
    webhook_token_param: str | None = None
    webhook_username: str | None = None
    webhook_event_id_field: str | None = None
    webhook_id_field: str = "reference"
    webhook_status_field: str = "status"
    webhook_time_field: str | None = "timestamp"
    webhook_statuses: dict[str, EventStatus] = Field(default_factory=lambda: dict(DEFAULT_REPORT_STATUSES))

    @model_validator(mode="after")
    def _consistent(self) -> HttpSmsConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password (HTTP Basic auth), or neither")
        if self.body_format == "form" and any(isinstance(v, dict | list) for v in self.body_template.values()):
            raise ValueError("a form body_template must be flat: name: value")
        if self.webhook_verifier not in ("hmac", "token", "basic") and ":" not in self.webhook_verifier:
            raise ValueError("webhook_verifier is hmac, token, basic or module:function")
        if self.webhook_verifier == "basic" and not self.webhook_username:
            raise ValueError("the basic webhook_verifier needs webhook_username and webhook_secret")
        return self


def format_phone(e164: str, style: str) -> str:
    """An E.164 number in the gateway's style (Thai national numbers start with 0 in place of +66)."""
    digits = e164.lstrip("+")
    if style == "digits":
        return digits
    if style == "national_th":
        return "0" + digits[2:] if digits.startswith("66") else digits
    return e164 if e164.startswith("+") else "+" + digits


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """The template with placeholders filled in (plain replacement: no format-string evaluation)."""
    if isinstance(template, dict):
        return {key: render(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, values) for value in template]
    if isinstance(template, str):
        for name in PLACEHOLDERS:
            token = "{" + name + "}"
            if template == token:
                return values[name]
            template = template.replace(token, str(values[name]))
        return template
    return template


def _dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


class HttpSmsProvider:
    channel = "sms"
    name = "http_sms"

    def __init__(self, config: HttpSmsConfig, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], dt.datetime] | None = None, verifier: Verifier | None = None) -> None:
        self.config = config
        self._client = client or httpx.Client()
        self._sleep = sleep
        self._now = now or RealClock().now
        self._policy = config.retry_policy()
        self._verify = verifier or build_verifier(config)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **kwargs: Any) -> HttpSmsProvider:
        return cls(HttpSmsConfig.from_settings(settings), **kwargs)

    def close(self) -> None:
        self._client.close()

    def _headers(self, msg_id: str | None) -> dict[str, str]:
        headers = dict(self.config.headers)
        if self.config.auth_value is not None:
            headers[self.config.auth_header] = self.config.auth_value.get_secret_value()
        if msg_id and self.config.idempotency_header:
            headers[self.config.idempotency_header] = msg_id
        return headers

    def payload(self, msg: OutboundMessage) -> Any:
        values = {"to": format_phone(msg.to, self.config.phone_format), "text": msg.body,
                  "sender": self.config.sender, "message_id": msg.id, "segments": sms_segments(msg.body)}
        return render(self.config.body_template, values)

    def _basic(self) -> tuple[str, str] | None:
        if self.config.username is None or self.config.password is None:
            return None
        return self.config.username, self.config.password.get_secret_value()

    def send(self, msg: OutboundMessage) -> Delivery:
        payload = self.payload(msg)
        body: dict[str, Any] = ({"data": {k: str(v) for k, v in payload.items()}} if self.config.body_format == "form"
                                else {"json": payload})
        result = http_call.call(self._client, self.config.method, self.config.url, service="http_sms",
                                policy=self._policy, sleep=self._sleep, message_id=msg.id,
                                headers=self._headers(msg.id), auth=self._basic(), **body)
        if result.ok:
            gateway_id = _dig(result.json(), self.config.id_field) if self.config.id_field else None
            return Delivery.sent(self.name, str(gateway_id) if gateway_id is not None else None)
        assert result.error is not None
        return Delivery.failed(self.name, result.error, permanent=result.permanent)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        self._verify(headers, body)
        reports = _reports(headers, body)
        events = []
        for report in reports:
            if not isinstance(report, dict):
                raise WebhookRejected("a delivery report is not an object")
            raw_type = str(_dig(report, self.config.webhook_status_field) or "").lower()
            status = self.config.webhook_statuses.get(raw_type)
            message_id = _dig(report, self.config.webhook_id_field)
            if status is None or not isinstance(message_id, str) or not message_id:
                continue
            own_id = _dig(report, self.config.webhook_event_id_field) if self.config.webhook_event_id_field else None
            event_id = str(own_id) if own_id not in (None, "") else f"{message_id}:{raw_type}"
            events.append(DeliveryEvent(message_id, status, self._time(report), self.name,
                                        None if status == "delivered" else raw_type, raw_type, event_id=event_id))
        return events

    def _time(self, report: dict[str, Any]) -> dt.datetime:
        stamp = _dig(report, self.config.webhook_time_field) if self.config.webhook_time_field else None
        try:
            if isinstance(stamp, int | float):
                return utc_from_unix(float(stamp))
            if isinstance(stamp, str) and stamp:
                return utc_from_unix(float(stamp)) if stamp.replace(".", "", 1).isdigit() else utc_from_iso(stamp)
        except (ValueError, OverflowError):
            pass
        return self._now()

    def check_credentials(self) -> None:
        if not self.config.url.startswith(("https://", "http://")):
            raise CredentialsError(f"http_sms: the gateway URL {self.config.url!r} is not an http(s) URL")
        try:
            response = self._client.request("HEAD", self.config.url, headers=self._headers(None),
                                            auth=self._basic(), timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise CredentialsError(f"http_sms: the gateway is not reachable ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise CredentialsError("http_sms: the gateway refused the credentials")


def _reports(headers: Mapping[str, str], body: bytes) -> list[Any]:
    """The reports in a request: a JSON object or list, or one form (``application/x-www-form-urlencoded``)."""
    kind = (header(headers, "content-type") or "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        try:
            return [dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))]
        except UnicodeDecodeError:
            raise WebhookRejected("the form is not UTF-8") from None
    try:
        data = json.loads(body)
    except ValueError:
        raise WebhookRejected("the body is not JSON") from None
    return data if isinstance(data, list) else [data]


def build_verifier(config: HttpSmsConfig) -> Verifier:
    """The delivery-report verifier the config names (see the module docstring)."""
    kind = config.webhook_verifier
    if ":" in kind:
        module, _, attr = kind.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        verifier: Verifier = factory(config)
        return verifier
    secret = config.webhook_secret.get_secret_value().encode("utf-8") if config.webhook_secret else None

    def verify(headers: Mapping[str, str], body: bytes) -> None:
        if secret is None:
            raise WebhookRejected("no webhook_secret is set, so no delivery report can be trusted")
        if kind == "hmac":
            given = (header(headers, config.webhook_signature_header) or "").strip().removeprefix("sha256=")
            digest = hmac.new(secret, body, hashlib.sha256).digest()
            expected = digest.hex() if config.webhook_signature_encoding == "hex" else base64.b64encode(digest).decode()
            ok = bool(given) and hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
        elif kind == "token":
            token = header(headers, config.webhook_signature_header)
            if token is None and config.webhook_token_param:
                for url in request_urls(headers):
                    values = parse_qs(urlsplit(url).query).get(config.webhook_token_param)
                    token = values[0] if values else token
            ok = token is not None and hmac.compare_digest(secret, token.encode("utf-8", "replace"))
        else:  # basic
            ok = _basic_matches(header(headers, "authorization"), config.webhook_username or "", secret)
        if not ok:
            raise WebhookRejected("the signature does not match")

    return verify


def _basic_matches(value: str | None, username: str, secret: bytes) -> bool:
    scheme, _, token = (value or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(token.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(user, username.encode("utf-8")) & hmac.compare_digest(password, secret)
