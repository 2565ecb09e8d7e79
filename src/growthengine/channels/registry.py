"""The registry of channel providers: factories by name, chosen per channel from settings."""

from __future__ import annotations

from collections.abc import Callable

from growthengine.channels.base import ChannelProvider
from growthengine.channels.in_app import InboxProvider
from growthengine.channels.outbox import OutboxProvider

ProviderFactory = Callable[[str], ChannelProvider]

FACTORIES: dict[str, ProviderFactory] = {
    "outbox": OutboxProvider,
    "inbox": lambda _channel: InboxProvider(),
}

DEFAULTS = {"push": "outbox", "email": "outbox", "sms": "outbox", "ads": "outbox", "in_app": "inbox"}


class UnknownProvider(LookupError):
    pass


def build_providers(chosen: dict[str, str] | None = None) -> dict[str, ChannelProvider]:
    """One provider per channel: the chosen factory, else the default (the local outbox, the inbox)."""
    providers: dict[str, ChannelProvider] = {}
    for channel, default in DEFAULTS.items():
        name = (chosen or {}).get(channel, default)
        factory = FACTORIES.get(name)
        if factory is None:
            raise UnknownProvider(f"no channel provider {name!r} for {channel}; known: {', '.join(FACTORIES)}")
        providers[channel] = factory(channel)
    return providers
