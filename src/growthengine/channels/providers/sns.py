"""Amazon SNS HTTP(S) messages: reading them and verifying their signatures (SignatureVersion 1 and 2).

AWS signs each message with the key of the X.509 certificate at ``SigningCertURL``. In production that URL must be
``https://sns.<region>.amazonaws.com/...pem``; the URL check and the fetcher are injectable so tests can sign real
messages with a locally made certificate.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from growthengine.channels.providers.base import WEBHOOK_MAX_AGE_S, WebhookRejected, check_fresh, utc_from_iso
from growthengine.clock import RealClock

SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_AWS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_CACHE_SIZE = 16

UrlCheck = Callable[[str], bool]
Fetch = Callable[[str], bytes]


def aws_url_allowed(url: str) -> bool:
    """Only ``https`` URLs on an SNS host of AWS (``sns.<region>.amazonaws.com``)."""
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(_AWS_HOST.match(parts.hostname or "")) and parts.port in (None, 443)


def https_fetch(client: httpx.Client, timeout_s: float = 10.0) -> Fetch:
    """A fetcher over ``client`` that refuses anything but a 200."""

    def fetch(url: str) -> bytes:
        response = client.get(url, timeout=timeout_s)
        if response.status_code != 200:
            raise WebhookRejected(f"fetching {urlsplit(url).hostname} gave HTTP {response.status_code}")
        return response.content

    return fetch


@dataclass(frozen=True)
class SnsMessage:
    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: dt.datetime
    subject: str | None = None
    subscribe_url: str | None = None

    def json(self) -> Any:
        """The ``Message`` decoded as JSON (SES events are JSON)."""
        try:
            return json.loads(self.message)
        except ValueError:
            raise WebhookRejected("the SNS message does not carry JSON") from None


class SnsVerifier:
    """Checks that a body is a genuine SNS message for one of our topics, signed less than ``max_age`` ago.

    ``topic_arns`` is required: with none, no message is trusted (any AWS account can sign a message for its own
    topic). ``now`` is system time (real time, never the engine's manual clock).
    """

    def __init__(self, *, fetch: Fetch, url_allowed: UrlCheck = aws_url_allowed,
                 topic_arns: frozenset[str] = frozenset(),
                 now: Callable[[], dt.datetime] | None = None,
                 max_age: dt.timedelta = dt.timedelta(seconds=WEBHOOK_MAX_AGE_S)) -> None:
        self._fetch = fetch
        self._url_allowed = url_allowed
        self._topic_arns = topic_arns
        self._now = now or RealClock().now
        self._max_age = max_age
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def verify(self, body: bytes, message_type: str | None = None) -> SnsMessage:
        """The message in ``body`` if its signature is good; :class:`WebhookRejected` otherwise."""
        try:
            data = json.loads(body)
        except ValueError:
            raise WebhookRejected("the body is not JSON") from None
        if not isinstance(data, dict):
            raise WebhookRejected("the body is not an SNS message")
        kind = data.get("Type")
        if kind not in SIGNED_KEYS:
            raise WebhookRejected(f"unknown SNS message type {str(kind)[:40]!r}")
        if message_type is not None and message_type != kind:
            raise WebhookRejected("the x-amz-sns-message-type header does not match the message")
        for key in ("MessageId", "TopicArn", "Message", "Timestamp", "Signature", "SigningCertURL"):
            if not isinstance(data.get(key), str):
                raise WebhookRejected(f"the SNS message has no {key}")
        if not self._topic_arns:
            raise WebhookRejected("no topic_arns are set, so no SNS message can be trusted")
        if data["TopicArn"] not in self._topic_arns:
            raise WebhookRejected("the SNS message is for a topic that is not ours")
        self._check_signature(data)
        try:
            timestamp = utc_from_iso(data["Timestamp"])
        except ValueError:
            raise WebhookRejected("the SNS message has a bad Timestamp") from None
        check_fresh(timestamp, self._now(), self._max_age.total_seconds(), "SNS message")
        return SnsMessage(type=kind, message_id=data["MessageId"], topic_arn=data["TopicArn"],
                          message=data["Message"], timestamp=timestamp, subject=data.get("Subject"),
                          subscribe_url=data.get("SubscribeURL"))

    def fetch_allowed(self, url: str) -> bytes:
        """GET an URL that passes the same host check as the signing certificate (to confirm a subscription)."""
        if not self._url_allowed(url):
            raise WebhookRejected("the URL is not on an allowed SNS host")
        try:
            return self._fetch(url)
        except httpx.HTTPError as exc:
            raise WebhookRejected(f"visiting the URL failed ({type(exc).__name__})") from None

    def _check_signature(self, data: dict[str, Any]) -> None:
        version = data.get("SignatureVersion")
        algorithm: hashes.HashAlgorithm
        if version == "1":
            algorithm = hashes.SHA1()  # noqa: S303  (SNS SignatureVersion 1 is SHA1withRSA)
        elif version == "2":
            algorithm = hashes.SHA256()
        else:
            raise WebhookRejected(f"unsupported SNS SignatureVersion {str(version)[:10]!r}")
        try:
            signature = base64.b64decode(data["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise WebhookRejected("the SNS signature is not base64") from None
        key = self._public_key(data["SigningCertURL"])
        try:
            key.verify(signature, string_to_sign(data), padding.PKCS1v15(), algorithm)
        except InvalidSignature:
            raise WebhookRejected("the SNS signature does not match") from None

    def _public_key(self, url: str) -> rsa.RSAPublicKey:
        if not self._url_allowed(url):
            raise WebhookRejected("the signing certificate is not on an allowed SNS host")
        with self._lock:
            cached = self._keys.get(url)
        if cached is not None:
            return cached
        try:
            cert = x509.load_pem_x509_certificate(self._fetch(url))
        except WebhookRejected:
            raise
        except (ValueError, httpx.HTTPError) as exc:
            raise WebhookRejected(f"the signing certificate could not be had ({type(exc).__name__})") from None
        if not cert.not_valid_before_utc <= self._now() <= cert.not_valid_after_utc:
            raise WebhookRejected("the signing certificate is not valid now")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookRejected("the signing certificate does not hold an RSA key")
        with self._lock:
            if len(self._keys) >= _CACHE_SIZE:
                self._keys.pop(next(iter(self._keys)))
            self._keys[url] = key
        return key


def string_to_sign(data: dict[str, Any]) -> bytes:
    """The canonical text SNS signs: ``Key\\nValue\\n`` for each signed key present, in order."""
    parts = []
    for key in SIGNED_KEYS[data["Type"]]:
        value = data.get(key)
        if value is not None:
            parts.append(f"{key}\n{value}\n")
    return "".join(parts).encode("utf-8")
