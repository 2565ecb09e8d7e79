"""The channel registry: defaults unchanged, real providers built by name from settings, bridged for the dispatcher."""

from __future__ import annotations

from typing import Any

import pytest

from growthengine.channels.in_app import InboxProvider
from growthengine.channels.outbox import OutboxProvider
from growthengine.channels.providers.base import CredentialsError, Delivery, OutboundMessage, Provider
from growthengine.channels.providers.bridge import LedgerBridge, outbound_message
from growthengine.channels.providers.smtp import SmtpProvider
from growthengine.channels.registry import FACTORIES, UnknownProvider, build_adapter, build_providers
from growthengine.clock import ManualClock
from growthengine.domain.messages import Message

SMTP = {"host": "127.0.0.1", "port": 2525, "from_address": "deals@jaikod.test"}


def test_the_defaults_are_the_outbox_and_the_inbox() -> None:
    providers = build_providers()
    assert set(providers) == {"push", "email", "sms", "ads", "in_app"}
    assert isinstance(providers["push"], OutboxProvider) and providers["push"].channel == "push"
    assert isinstance(providers["in_app"], InboxProvider)


def test_every_real_provider_is_registered() -> None:
    assert {"fcm", "ses", "sendgrid", "smtp", "twilio", "http_sms", "facebook_audience",
            "google_customer_match", "outbox", "inbox"} <= set(FACTORIES)


def test_a_chosen_provider_is_built_from_its_settings_and_bridged(clock: ManualClock) -> None:
    providers = build_providers({"email": "smtp"}, {"smtp": SMTP}, clock=clock)
    bridge = providers["email"]
    assert isinstance(bridge, LedgerBridge) and isinstance(bridge.provider, SmtpProvider)
    assert (bridge.channel, bridge.name) == ("email", "smtp")
    assert isinstance(providers["sms"], OutboxProvider)


def test_build_adapter_gives_the_pure_provider(clock: ManualClock) -> None:
    provider = build_adapter("smtp", "email", SMTP, clock=clock)
    assert isinstance(provider, Provider)
    with pytest.raises(UnknownProvider, match="bound to the send ledger"):
        build_adapter("outbox", "email")


def test_wrong_names_channels_and_settings_are_clear_errors() -> None:
    with pytest.raises(UnknownProvider, match="no channel provider 'mailgun' for email"):
        build_providers({"email": "mailgun"})
    with pytest.raises(UnknownProvider, match="smtp is a email provider, not a sms one"):
        build_providers({"sms": "smtp"}, {"smtp": SMTP})
    with pytest.raises(CredentialsError, match="SmtpConfig: host: Field required"):
        build_providers({"email": "smtp"}, {"smtp": {"from_address": "a@b.c"}})


def ledger_message(channel: str = "push", **data: Any) -> Message:
    return Message(id="msg_1", user_id="u-1", flow="price_drop", step="push", channel=channel, kind="marketing",
                   status="scheduled", scheduled_us=0, updated_us=0, body="ราคาลงแล้ว!", title="🔥",
                   image_url="https://img/1.jpg", data=data)


def test_outbound_message_from_the_ledger_and_the_traits() -> None:
    msg = outbound_message(ledger_message(urgency="high"), {"push_token": " tok-1 ", "email": "x@example.com"})
    assert (msg.to, msg.urgency, msg.kind, msg.title, msg.image_url) == ("tok-1", "high", "marketing", "🔥",
                                                                         "https://img/1.jpg")
    assert "tok-1" not in repr(msg)


class Recorder:
    channel = "push"
    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, msg: OutboundMessage) -> Delivery:
        self.sent.append(msg)
        return Delivery.failed(self.name, "HTTP 404: UNREGISTERED", permanent=True, invalid_address=True)

    def parse_webhook(self, headers: Any, body: bytes) -> list[Any]:
        return []

    def check_credentials(self) -> None:
        return None


def test_the_bridge_maps_the_delivery_and_a_missing_address() -> None:
    recorder = Recorder()
    bridge = LedgerBridge(recorder)
    delivery = bridge.send(None, ledger_message(), {"push_token": "tok"}, 0)  # type: ignore[arg-type]
    assert (delivery.status, delivery.reason, delivery.permanent) == ("failed", "HTTP 404: UNREGISTERED", True)
    missing = bridge.send(None, ledger_message(), {}, 0)  # type: ignore[arg-type]
    assert (missing.status, missing.reason) == ("failed", "no_address")
    assert len(recorder.sent) == 1
