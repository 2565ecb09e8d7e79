"""The registry of channel providers: factories by name, chosen per channel from settings.

A factory takes the channel it will serve, the provider's settings (a plain dict, checked by the provider's
typed config), optionally the engine clock (business time: event times a webhook lacks, an email's Date) and the
engine's public URL (webhook URLs given to the services). Webhook signature windows are system time, which each
provider reads from the clock module itself, never from the engine clock. The local ``outbox`` and the in-app
``inbox`` are ledger-bound; the real providers (``channels/providers/``) are pure adapters that never touch the
database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from growthengine.channels.base import ChannelProvider
from growthengine.channels.in_app import InboxProvider
from growthengine.channels.outbox import OutboxProvider
from growthengine.channels.providers.base import Provider
from growthengine.channels.providers.bridge import LedgerBridge
from growthengine.channels.providers.facebook_audience import FacebookAudienceProvider
from growthengine.channels.providers.fcm import FcmProvider
from growthengine.channels.providers.google_customer_match import GoogleCustomerMatchProvider
from growthengine.channels.providers.http_sms import HttpSmsProvider
from growthengine.channels.providers.sendgrid import SendGridProvider
from growthengine.channels.providers.ses import SesProvider
from growthengine.channels.providers.smtp import SmtpProvider
from growthengine.channels.providers.twilio import TwilioProvider
from growthengine.clock import Clock

AnyProvider = ChannelProvider | Provider


class ProviderFactory(Protocol):
    def __call__(self, channel: str, settings: Mapping[str, Any] | None = None, *,
                 clock: Clock | None = None, public_url: str | None = None) -> AnyProvider: ...


class UnknownProvider(LookupError):
    pass


def _outbox(channel: str, settings: Mapping[str, Any] | None = None, *, clock: Clock | None = None,
            public_url: str | None = None) -> AnyProvider:
    return OutboxProvider(channel)


def _inbox(channel: str, settings: Mapping[str, Any] | None = None, *, clock: Clock | None = None,
           public_url: str | None = None) -> AnyProvider:
    return InboxProvider()


class _Adapter:
    """The factory of one pure provider class (``from_settings``), checking that it serves the channel."""

    def __init__(self, cls: Any, *, takes_now: bool, takes_public_url: bool = False) -> None:
        self.cls = cls
        self.takes_now = takes_now
        self.takes_public_url = takes_public_url

    def __call__(self, channel: str, settings: Mapping[str, Any] | None = None, *,
                 clock: Clock | None = None, public_url: str | None = None) -> AnyProvider:
        if channel != self.cls.channel:
            raise UnknownProvider(f"{self.cls.name} is a {self.cls.channel} provider, not a {channel} one")
        kwargs: dict[str, Any] = {"now": clock.now} if self.takes_now and clock is not None else {}
        if self.takes_public_url and public_url:
            kwargs["public_url"] = public_url
        provider: Provider = self.cls.from_settings(settings or {}, **kwargs)
        return provider


FACTORIES: dict[str, ProviderFactory] = {
    "outbox": _outbox,
    "inbox": _inbox,
    "fcm": _Adapter(FcmProvider, takes_now=False),
    "ses": _Adapter(SesProvider, takes_now=False),
    "sendgrid": _Adapter(SendGridProvider, takes_now=False),
    "smtp": _Adapter(SmtpProvider, takes_now=True),
    "twilio": _Adapter(TwilioProvider, takes_now=True, takes_public_url=True),
    "http_sms": _Adapter(HttpSmsProvider, takes_now=True),
    "facebook_audience": _Adapter(FacebookAudienceProvider, takes_now=False),
    "google_customer_match": _Adapter(GoogleCustomerMatchProvider, takes_now=False),
}

DEFAULTS = {"push": "outbox", "email": "outbox", "sms": "outbox", "ads": "outbox", "in_app": "inbox"}


def _factory(name: str, channel: str) -> ProviderFactory:
    factory = FACTORIES.get(name)
    if factory is None:
        raise UnknownProvider(f"no channel provider {name!r} for {channel}; known: {', '.join(FACTORIES)}")
    return factory


def build_adapter(name: str, channel: str, settings: Mapping[str, Any] | None = None, *,
                  clock: Clock | None = None, public_url: str | None = None) -> Provider:
    """The pure provider ``name`` for ``channel`` (for the delivery worker); the outbox and inbox are not pure."""
    provider = _factory(name, channel)(channel, settings, clock=clock, public_url=public_url)
    if not isinstance(provider, Provider):
        raise UnknownProvider(f"{name!r} is bound to the send ledger, not a pure provider")
    return provider


def build_providers(chosen: dict[str, str] | None = None,
                    configs: Mapping[str, Mapping[str, Any]] | None = None, *,
                    clock: Clock | None = None, public_url: str | None = None) -> dict[str, ChannelProvider]:
    """One provider per channel: the chosen factory, else the default (the local outbox, the inbox).

    ``configs`` holds each provider's settings by provider name. A pure provider is wrapped in a
    :class:`LedgerBridge` so the dispatcher can call it as it calls the outbox.
    """
    providers: dict[str, ChannelProvider] = {}
    for channel, default in DEFAULTS.items():
        name = (chosen or {}).get(channel, default)
        provider = _factory(name, channel)(channel, (configs or {}).get(name), clock=clock, public_url=public_url)
        providers[channel] = LedgerBridge(provider) if isinstance(provider, Provider) else provider
    return providers
