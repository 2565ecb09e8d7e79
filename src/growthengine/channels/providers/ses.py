"""Email through Amazon SES v2 (boto3 ``sesv2.send_email``, Simple content), and SES events through SNS.

Idempotency: SES takes no idempotency key. Our message id travels twice: as the message tag ``message_id``
(``EmailTags``, which SES copies into every event as ``mail.tags``) and as the header ``X-Growth-Message-Id``.
Events are matched by the tag first, the header second. Events reach us when the configuration set publishes
them to an SNS topic that posts to our webhook; :meth:`SesProvider.parse_webhook` verifies the SNS signature.

boto3's own retries are off: transient failures (throttling, 5xx, no connection) are retried here, on the
engine's policy and injectable sleep, and a 4xx is never retried.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Mapping
from email.utils import formataddr
from typing import Any

import boto3
import httpx
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, SecretStr

from growthengine.channels.providers.base import (
    WEBHOOK_MAX_AGE_S,
    CredentialsError,
    Delivery,
    DeliveryEvent,
    EventStatus,
    OutboundMessage,
    WebhookRejected,
    header,
    scrub,
    utc_from_iso,
)
from growthengine.channels.providers.config import ProviderConfig
from growthengine.channels.providers.email_headers import MESSAGE_ID_HEADER, unsubscribe_headers
from growthengine.channels.providers.sns import Fetch, SnsMessage, SnsVerifier, UrlCheck, aws_url_allowed, https_fetch

log = logging.getLogger(__name__)

TAG = "message_id"
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_TRANSIENT_CODES = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException",
                              "LimitExceededException", "ServiceUnavailable", "InternalFailure"})
# SES event type -> our status and where the event's own time is. Send and DeliveryDelay are not outcomes.
EVENTS: dict[str, tuple[EventStatus, str]] = {
    "Delivery": ("delivered", "delivery"),
    "Bounce": ("bounced", "bounce"),
    "Complaint": ("complained", "complaint"),
    "Open": ("opened", "open"),
    "Click": ("clicked", "click"),
    "Reject": ("failed", "reject"),
    "Rendering Failure": ("failed", "failure"),
    "Subscription": ("unsubscribed", "subscription"),
}


class SesConfig(ProviderConfig):
    region: str
    from_address: str
    from_name: str | None = None
    configuration_set: str | None = None
    reply_to: list[str] = Field(default_factory=list)
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    endpoint_url: str | None = None
    # SNS topics whose messages the webhook accepts: required for events (with none, every SNS message is refused,
    # since any AWS account can sign messages for a topic of its own).
    topic_arns: list[str] = Field(default_factory=list)
    # How old an SNS message may be (its signed Timestamp, against system time). SNS keeps the Timestamp of the
    # first attempt on its retries: raise this if the topic's delivery policy retries for longer.
    webhook_max_age_s: int = Field(default=WEBHOOK_MAX_AGE_S, ge=30, le=3600)
    unsubscribe_mailto: str | None = None


class SesProvider:
    channel = "email"
    name = "ses"

    def __init__(self, config: SesConfig, *, client: Any = None, http: httpx.Client | None = None,
                 url_allowed: UrlCheck = aws_url_allowed, fetch: Fetch | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 system_now: Callable[[], dt.datetime] | None = None) -> None:
        self.config = config
        self._boto = client
        self._http = http or httpx.Client()
        self._sleep = sleep
        self._policy = config.retry_policy()
        self._sns = SnsVerifier(fetch=fetch or https_fetch(self._http, config.timeout_s), url_allowed=url_allowed,
                                topic_arns=frozenset(config.topic_arns), now=system_now,
                                max_age=dt.timedelta(seconds=config.webhook_max_age_s))

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **kwargs: Any) -> SesProvider:
        return cls(SesConfig.from_settings(settings), **kwargs)

    def close(self) -> None:
        self._http.close()

    @property
    def _client(self) -> Any:
        """The sesv2 client, made on first use (making one is slow, and webhooks do not need it)."""
        if self._boto is None:
            self._boto = _boto_client(self.config)
        return self._boto

    def request(self, msg: OutboundMessage) -> dict[str, Any]:
        """The ``send_email`` arguments for ``msg``."""
        headers = {MESSAGE_ID_HEADER: msg.id}
        if msg.kind == "marketing":
            headers.update(unsubscribe_headers(msg.id, msg.unsubscribe_url, self.config.unsubscribe_mailto))
        body: dict[str, Any] = {"Text": {"Data": msg.body, "Charset": "UTF-8"}}
        if msg.html:
            body["Html"] = {"Data": msg.html, "Charset": "UTF-8"}
        sender = self.config.from_address
        if self.config.from_name:
            sender = formataddr((self.config.from_name, sender), charset="utf-8")
        tags = [{"Name": "kind", "Value": msg.kind}]
        if _TAG_VALUE.match(msg.id):
            tags.insert(0, {"Name": TAG, "Value": msg.id})
        args: dict[str, Any] = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [msg.to]},
            "Content": {"Simple": {
                "Subject": {"Data": msg.subject or msg.title or "", "Charset": "UTF-8"},
                "Body": body,
                "Headers": [{"Name": k, "Value": v} for k, v in headers.items()],
            }},
            "EmailTags": tags,
        }
        if self.config.reply_to:
            args["ReplyToAddresses"] = list(self.config.reply_to)
        if self.config.configuration_set:
            args["ConfigurationSetName"] = self.config.configuration_set
        return args

    def send(self, msg: OutboundMessage) -> Delivery:
        args = self.request(msg)
        reason = "no attempt made"
        for attempt in range(1, self._policy.attempts + 1):
            try:
                answer = self._client.send_email(**args)
            except ClientError as exc:
                status, code, text = _client_error(exc)
                reason = f"HTTP {status}: {code}: {text}"
                if status < 500 and code not in _TRANSIENT_CODES:
                    log.info("ses refused message %s: %s", msg.id, code)
                    return Delivery.failed(self.name, reason, permanent=True)
            except BotoCoreError as exc:
                reason = f"could not reach SES ({type(exc).__name__})"
            else:
                return Delivery.sent(self.name, str(answer.get("MessageId") or "") or None)
            if attempt < self._policy.attempts:
                log.warning("ses send of message %s failed (%s), attempt %d of %d", msg.id,
                            reason.split(":")[0], attempt, self._policy.attempts)
                self._sleep(self._policy.delay(attempt))
        return Delivery.failed(self.name, reason, permanent=False)

    # -- webhooks -------------------------------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes) -> SnsMessage:
        """The genuine SNS message in a webhook request (:class:`WebhookRejected` otherwise)."""
        return self._sns.verify(body, header(headers, "x-amz-sns-message-type"))

    def subscribe_url(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """For a genuine SubscriptionConfirmation, the URL to visit to confirm it; None for other messages."""
        message = self.verify(headers, body)
        return message.subscribe_url if message.type == "SubscriptionConfirmation" else None

    def confirm_subscription(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Confirm a genuine SubscriptionConfirmation by visiting its SubscribeURL; False for other messages."""
        message = self.verify(headers, body)
        if message.type != "SubscriptionConfirmation":
            return False
        self._confirm(message)
        return True

    def _confirm(self, message: SnsMessage) -> None:
        """GET the SubscribeURL (on an SNS host of AWS, as the signing certificate): SNS then starts sending."""
        if not message.subscribe_url:
            raise WebhookRejected("the SubscriptionConfirmation has no SubscribeURL")
        self._sns.fetch_allowed(message.subscribe_url)
        log.info("ses: confirmed the SNS subscription to %s", message.topic_arn)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        """Events of a genuine SES notification; a genuine SubscriptionConfirmation is confirmed on the spot."""
        message = self.verify(headers, body)
        if message.type == "SubscriptionConfirmation":
            self._confirm(message)
            return []
        if message.type != "Notification":
            return []  # an UnsubscribeConfirmation: nothing to do
        event = message.json()
        if not isinstance(event, dict):
            raise WebhookRejected("the SNS message is not an SES event")
        raw_type = str(event.get("eventType") or event.get("notificationType") or "")
        mapped = EVENTS.get(raw_type)
        if mapped is None:
            return []
        mail = event.get("mail")
        message_id = _our_message_id(mail if isinstance(mail, dict) else {})
        if message_id is None:
            log.info("ses %s event for a message without our id (ses id %s)", raw_type,
                     mail.get("messageId") if isinstance(mail, dict) else "-")
            return []
        status, section = mapped
        detail = event.get(section)
        detail = detail if isinstance(detail, dict) else {}
        at = _event_time(detail, mail if isinstance(mail, dict) else {}, message.timestamp)
        return [DeliveryEvent(message_id, status, at, self.name, _reason(raw_type, detail), raw_type,
                              event_id=message.message_id, signed_at=message.timestamp)]

    def check_credentials(self) -> None:
        address = self.config.from_address
        for identity in (address, address.rpartition("@")[2]):
            try:
                found = self._client.get_email_identity(EmailIdentity=identity)
            except ClientError as exc:
                _, code, text = _client_error(exc)
                if code == "NotFoundException":
                    continue
                raise CredentialsError(f"ses: the credentials were refused ({code}: {text})") from None
            except BotoCoreError as exc:
                raise CredentialsError(f"ses: SES is not reachable ({type(exc).__name__})") from None
            if not (found.get("VerifiedForSendingStatus") or found.get("VerificationStatus") == "SUCCESS"):
                raise CredentialsError(f"ses: the sender identity {identity} is not verified for sending")
            return
        raise CredentialsError(f"ses: neither {address} nor its domain is an identity in {self.config.region}")


def _boto_client(config: SesConfig) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key.get_secret_value() if config.secret_access_key else None,
        aws_session_token=config.session_token.get_secret_value() if config.session_token else None,
        region_name=config.region,
    )
    boto_config = BotoConfig(retries={"total_max_attempts": 1}, connect_timeout=config.timeout_s,
                             read_timeout=config.timeout_s)
    return session.client("sesv2", endpoint_url=config.endpoint_url, config=boto_config)


def _client_error(exc: ClientError) -> tuple[int, str, str]:
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
    error = exc.response.get("Error", {})
    return status, str(error.get("Code") or "Error"), scrub(str(error.get("Message") or ""))[:200]


def _our_message_id(mail: dict[str, Any]) -> str | None:
    tags = mail.get("tags")
    if isinstance(tags, dict):
        values = tags.get(TAG)
        if isinstance(values, list) and values and isinstance(values[0], str):
            return values[0]
    for item in mail.get("headers") or []:
        if isinstance(item, dict) and str(item.get("name", "")).lower() == MESSAGE_ID_HEADER.lower():
            value = item.get("value")
            if isinstance(value, str) and value:
                return value
    return None


def _event_time(detail: dict[str, Any], mail: dict[str, Any], fallback: dt.datetime) -> dt.datetime:
    for stamp in (detail.get("timestamp"), mail.get("timestamp")):
        if isinstance(stamp, str):
            try:
                return utc_from_iso(stamp)
            except ValueError:
                continue
    return fallback


def _reason(raw_type: str, detail: dict[str, Any]) -> str | None:
    if raw_type == "Bounce":
        parts = [str(detail.get("bounceType") or ""), str(detail.get("bounceSubType") or "")]
        return "/".join(p for p in parts if p) or None
    if raw_type == "Complaint":
        return str(detail.get("complaintFeedbackType") or "complaint")
    if raw_type in ("Reject", "Rendering Failure"):
        return str(detail.get("reason") or detail.get("errorMessage") or raw_type)[:200]
    if raw_type == "Click":
        return None  # the link may carry personal data; the click itself is the signal
    return None
