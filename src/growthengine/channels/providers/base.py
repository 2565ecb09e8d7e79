"""The interface of a real channel provider: a pure adapter between one message and one outside service.

A provider never touches the database. The delivery worker commits a message to the send ledger first, then
hands it here as an :class:`OutboundMessage` whose ``id`` is the idempotency key; the provider answers with a
:class:`Delivery`. Webhooks from the service come back through :meth:`Provider.parse_webhook` as
:class:`DeliveryEvent` values keyed by that same id.

Providers log message ids only: never an address (email, phone, push token), a body or a credential.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Kind = Literal["marketing", "transactional"]
Urgency = Literal["normal", "high"]
EventStatus = Literal["delivered", "bounced", "failed", "opened", "clicked", "unsubscribed", "complained"]

# The webhook route puts the full public URL the provider called under this header name (lower case), for
# providers whose signature covers the URL (Twilio) or that carry our message id in it: built from the configured
# public URL (``GROWTH_PUBLIC_URL``), else from trusted forwarded headers, else the URL the engine saw.
REQUEST_URL_HEADER = "x-growth-request-url"
# Every URL the service may have called (space separated, most likely first): the signature decides which one.
REQUEST_URLS_HEADER = "x-growth-request-urls"
# How far a webhook's signed timestamp may be from system time (real time, never the manual business clock).
WEBHOOK_MAX_AGE_S = 300


@dataclass(frozen=True)
class OutboundMessage:
    """One message to hand over. ``id`` is the ledger id and the idempotency key.

    ``to`` is the address on the channel: a push token, an email address, an E.164 phone number, or (for ads)
    an email or its SHA-256 hash. It is left out of ``repr`` so that a logged message never shows it.
    """

    id: str
    user_id: str
    channel: str
    kind: Kind
    to: str = field(repr=False)
    title: str | None = None
    subject: str | None = None
    body: str = field(default="", repr=False)
    html: str | None = field(default=None, repr=False)
    image_url: str | None = None
    urgency: Urgency = "normal"
    unsubscribe_url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """What the provider said about one send.

    ``sent``: the service accepted it (``provider_id`` is its id for the message). ``failed``: it did not;
    ``permanent`` failures (HTTP 4xx, SMTP 5xx) will fail again unchanged, the others (5xx, timeouts, 429) may
    succeed later. ``invalid_address`` says the address itself is dead (an unregistered push token, a number
    that is not a mobile phone): the worker should clear it from the profile.
    """

    status: Literal["sent", "failed"]
    provider: str
    provider_id: str | None = None
    reason: str | None = None
    permanent: bool = False
    invalid_address: bool = False
    # The recipient opted out at the service (Twilio 21610: they texted STOP): record an unsubscribe for the
    # message's channel, do not clear the address.
    unsubscribed: bool = False

    @classmethod
    def sent(cls, provider: str, provider_id: str | None) -> Delivery:
        return cls("sent", provider, provider_id=provider_id)

    @classmethod
    def failed(cls, provider: str, reason: str, *, permanent: bool, invalid_address: bool = False,
               unsubscribed: bool = False) -> Delivery:
        return cls("failed", provider, reason=reason, permanent=permanent, invalid_address=invalid_address,
                   unsubscribed=unsubscribed)


@dataclass(frozen=True)
class DeliveryEvent:
    """Feedback from a provider's webhook about one of our messages.

    ``event_id`` is the service's id for this event (a replay carries the same one), remembered so that a replayed
    webhook changes nothing; ``signed_at`` is the time the service signed it, when its signature covers a time.
    """

    message_id: str
    status: EventStatus
    at: dt.datetime
    provider: str
    reason: str | None = None
    raw_type: str = ""
    event_id: str | None = None
    signed_at: dt.datetime | None = None


class WebhookRejected(Exception):
    """A webhook request that must not be trusted or cannot be read (bad signature, bad shape). Answer 4xx."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CredentialsError(Exception):
    """The provider's credentials or settings do not work; the message says what to fix."""


@runtime_checkable
class Provider(Protocol):
    """A channel provider: sends one message, reads the service's webhooks, checks its own credentials."""

    channel: str
    name: str

    def send(self, msg: OutboundMessage) -> Delivery:
        """Hand ``msg`` to the service, retrying transient failures; never raises for a service failure."""
        ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        """Verify and read one webhook request; raise :class:`WebhookRejected` when it is not genuine."""
        ...

    def check_credentials(self) -> None:
        """Raise :class:`CredentialsError` with a clear message when the provider cannot work as set up."""
        ...


_EMAIL = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")
_PHONE = re.compile(r"(?<![\w/])(?:\+|0)\d[\d \-]{7,}\d")  # E.164 (+66...) or Thai national (08...)


def scrub(text: str) -> str:
    """``text`` with email addresses and phone numbers masked: provider error text often quotes the address."""
    return _PHONE.sub("<phone>", _EMAIL.sub("<address>", text))


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header by name, whatever its case."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def request_urls(headers: Mapping[str, str]) -> list[str]:
    """The candidate public URLs the webhook route passed (see :data:`REQUEST_URLS_HEADER`)."""
    many = header(headers, REQUEST_URLS_HEADER)
    one = header(headers, REQUEST_URL_HEADER)
    urls = (many.split() if many else []) + ([one] if one else [])
    return list(dict.fromkeys(u for u in urls if u))


def utc_from_unix(seconds: float) -> dt.datetime:
    """A Unix timestamp (as webhooks carry them) as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def check_fresh(signed_at: dt.datetime, now: dt.datetime, max_age_s: float, what: str = "signature") -> None:
    """Raise :class:`WebhookRejected` when a signed time is more than ``max_age_s`` from ``now`` (either way)."""
    if abs((now - signed_at).total_seconds()) > max_age_s:
        raise WebhookRejected(f"the {what} timestamp is more than {max_age_s:g}s from now (stale or replayed)")


def utc_from_iso(text: str) -> dt.datetime:
    """An ISO-8601 timestamp (``Z`` allowed) as an aware UTC datetime; naive times are taken as UTC."""
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)
