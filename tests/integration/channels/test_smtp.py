"""SMTP against a real aiosmtpd server on 127.0.0.1: the MIME message as received, STARTTLS (port 587's way) and
implicit TLS (port 465's, RFC 8314) by default, login, replies; a refused login is permanent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from growthengine.channels.providers.base import CredentialsError, OutboundMessage, WebhookRejected
from growthengine.channels.providers.smtp import SmtpConfig, SmtpProvider
from tests.integration.channels.doubles import SmtpDouble, SmtpHandler, free_port, run_smtp

MID = "msg_0f0f0f0f0f0f0f0f0f0f0f0f"
NOW = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)
SUBJECT = "ลดให้พิเศษ 5% เฉพาะคุณ 🏷️"


@pytest.fixture(scope="module")
def plain() -> Iterator[SmtpDouble]:
    with run_smtp() as double:
        yield double


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpDouble]:
    with run_smtp(tls_dir=tmp_path_factory.mktemp("tls")) as double:
        yield double


@pytest.fixture(scope="module")
def implicit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpDouble]:
    with run_smtp(tls_dir=tmp_path_factory.mktemp("tls465"), implicit=True) as double:
        yield double


@pytest.fixture
def smtp(plain: SmtpDouble) -> Iterator[SmtpDouble]:
    plain.handler.reset()
    yield plain
    plain.handler.reset()


Make = Callable[..., SmtpProvider]


@pytest.fixture
def make(sleeps: list[float]) -> Make:
    def build(double: SmtpDouble, **settings: Any) -> SmtpProvider:
        if double.client_context is None:  # the plain double: a relay on this machine
            settings.setdefault("security", "none")
        config = SmtpConfig.from_settings({"host": "127.0.0.1", "port": double.port, "from_address":
                                           "deals@jaikod.test", "from_name": "JaiKod ใจกด", "timeout_s": 5,
                                           "unsubscribe_mailto": "unsubscribe@jaikod.test", "backoff_s": 0.5,
                                           **settings})
        return SmtpProvider(config, ssl_context=double.client_context, sleep=sleeps.append, now=lambda: NOW)

    return build


def email(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "id": MID, "user_id": "u-42", "channel": "email", "kind": "marketing", "to": "somchai@example.co.th",
        "subject": SUBJECT, "body": "คูปอง SAVE5-XYZ ของคุณใช้ได้ถึงพรุ่งนี้ 🔥",
        "html": "<p>คูปอง <b>SAVE5-XYZ</b> ของคุณ</p>", "unsubscribe_url": "https://jaikod.test/u/unsub?m=" + MID,
    }
    fields.update(overrides)
    return OutboundMessage(**fields)


def test_a_marketing_email_as_received(smtp: SmtpDouble, make: Make) -> None:
    delivery = make(smtp).send(email())
    assert (delivery.status, delivery.provider_id) == ("sent", f"<{MID}@jaikod.test>")
    [(envelope, mail)] = smtp.handler.received
    assert (envelope.mail_from, envelope.rcpt_tos) == ("deals@jaikod.test", ["somchai@example.co.th"])
    raw = envelope.original_content or b""
    assert b"=?utf-8?" in raw.split(b"\r\n\r\n")[0]  # the Thai subject is RFC 2047-encoded on the wire
    assert str(mail["Subject"]) == SUBJECT
    assert mail["From"].addresses[0].display_name == "JaiKod ใจกด"
    assert mail["Message-ID"] == f"<{MID}@jaikod.test>"
    assert mail["X-Growth-Message-Id"] == MID
    assert mail["Date"].datetime == NOW
    assert mail["List-Unsubscribe"] == (f"<mailto:unsubscribe@jaikod.test?subject=unsubscribe%20{MID}>, "
                                        f"<https://jaikod.test/u/unsub?m={MID}>")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().strip() == "คูปอง SAVE5-XYZ ของคุณใช้ได้ถึงพรุ่งนี้ 🔥"
    assert html.get_content().strip() == "<p>คูปอง <b>SAVE5-XYZ</b> ของคุณ</p>"


def test_a_transactional_text_email(smtp: SmtpDouble, make: Make) -> None:
    make(smtp).send(email(kind="transactional", html=None))
    [(_, mail)] = smtp.handler.received
    assert mail["List-Unsubscribe"] is None and mail["List-Unsubscribe-Post"] is None
    assert mail.get_content_type() == "text/plain"


def test_mailto_only_unsubscribe_has_no_one_click_header(smtp: SmtpDouble, make: Make) -> None:
    make(smtp).send(email(unsubscribe_url=None))
    [(_, mail)] = smtp.handler.received
    assert mail["List-Unsubscribe"].startswith("<mailto:")
    assert mail["List-Unsubscribe-Post"] is None


def test_starttls_and_login(secured: SmtpDouble, make: Make) -> None:
    secured.handler.reset()
    provider = make(secured, starttls=True, username="growth", password="s3cret")
    provider.check_credentials()
    assert provider.send(email()).status == "sent"
    assert len(secured.handler.received) == 1


def test_starttls_is_the_default_on_any_port_but_465(secured: SmtpDouble, make: Make) -> None:
    secured.handler.reset()
    provider = make(secured, username="growth", password="s3cret")  # no security setting: auto
    assert provider.config.mode == "starttls"
    assert provider.send(email()).status == "sent"
    assert len(secured.handler.received) == 1


def test_implicit_tls_as_on_port_465(implicit: SmtpDouble, make: Make) -> None:
    implicit.handler.reset()
    provider = make(implicit, security="tls", username="growth", password="s3cret")
    provider.check_credentials()
    assert provider.send(email()).status == "sent"
    assert len(implicit.handler.received) == 1


@pytest.mark.parametrize(("settings", "mode"), [
    ({"port": 587}, "starttls"), ({"port": 465}, "tls"), ({"port": 25}, "starttls"), ({}, "starttls"),
    ({"port": 2525, "security": "tls"}, "tls"), ({"port": 465, "security": "starttls"}, "starttls"),
    ({"port": 587, "ssl": True}, "tls"), ({"port": 465, "starttls": True}, "starttls"),
    ({"port": 25, "starttls": False, "ssl": False}, "none"), ({"host": "localhost", "security": "none"}, "none"),
])
def test_security_defaults(settings: dict[str, Any], mode: str) -> None:
    config = SmtpConfig.from_settings({"host": "smtp.gmail.com", "from_address": "deals@jaikod.test", **settings})
    assert config.mode == mode


def test_a_password_is_never_sent_in_clear() -> None:
    with pytest.raises(CredentialsError, match="password in clear"):
        SmtpConfig.from_settings({"host": "email-smtp.ap-southeast-1.amazonaws.com", "security": "none",
                                  "username": "AKIA", "password": "p", "from_address": "deals@jaikod.test"})


def test_a_server_without_starttls_is_refused_not_sent_the_password(smtp: SmtpDouble, make: Make,
                                                                   sleeps: list[float]) -> None:
    provider = make(smtp, security="auto", username="growth", password="s3cret")
    delivery = provider.send(email())
    assert (delivery.status, delivery.permanent) == ("failed", True)
    assert delivery.reason is not None and "STARTTLS" in delivery.reason
    assert sleeps == [] and smtp.handler.received == []
    with pytest.raises(CredentialsError, match="port 587 speaks STARTTLS, 465 implicit TLS"):
        provider.check_credentials()


def test_tls_spoken_to_a_plain_port_is_permanent(smtp: SmtpDouble, make: Make, sleeps: list[float]) -> None:
    delivery = make(smtp, security="tls").send(email())
    assert (delivery.status, delivery.permanent) == ("failed", True)
    assert delivery.reason is not None and delivery.reason.startswith("TLS failed")
    assert sleeps == []


def test_an_untrusted_certificate_is_permanent(secured: SmtpDouble, sleeps: list[float]) -> None:
    config = SmtpConfig.from_settings({"host": "127.0.0.1", "port": secured.port, "from_address": "d@jaikod.test",
                                       "timeout_s": 5})
    delivery = SmtpProvider(config, sleep=sleeps.append).send(email())  # the system's CAs: the double's is not one
    assert (delivery.status, delivery.permanent) == ("failed", True)
    assert delivery.reason is not None and delivery.reason.startswith("TLS certificate refused")


def test_a_wrong_password_is_permanent(secured: SmtpDouble, make: Make, sleeps: list[float]) -> None:
    provider = make(secured, username="growth", password="wrong")
    with pytest.raises(CredentialsError, match="login refused"):
        provider.check_credentials()
    delivery = provider.send(email())
    assert (delivery.status, delivery.permanent, delivery.reason) == ("failed", True, "SMTP login refused: 535")
    assert sleeps == []  # not retried: it would be refused the same way until the settings change


def test_a_refused_mailbox_is_an_invalid_address(smtp: SmtpDouble, make: Make, sleeps: list[float]) -> None:
    smtp.handler.rcpt_replies.append("550 5.1.1 <somchai@example.co.th>: Recipient address rejected")
    delivery = make(smtp).send(email())
    assert (delivery.status, delivery.permanent, delivery.invalid_address) == ("failed", True, True)
    assert delivery.reason == "SMTP 550: 5.1.1 <<address>>: Recipient address rejected"
    assert sleeps == [] and smtp.handler.received == []


def test_a_refused_message_is_permanent_but_the_address_is_fine(smtp: SmtpDouble, make: Make) -> None:
    smtp.handler.data_replies.append("554 5.7.1 Message rejected as spam")
    delivery = make(smtp).send(email())
    assert (delivery.status, delivery.permanent, delivery.invalid_address) == ("failed", True, False)


def test_a_4xx_reply_is_retried_and_the_mail_arrives_once(smtp: SmtpDouble, make: Make, sleeps: list[float]) -> None:
    smtp.handler.data_replies.append("451 4.3.0 Try again later")
    assert make(smtp).send(email()).status == "sent"
    assert len(smtp.handler.received) == 1
    assert sleeps == [0.5]


def test_no_server_is_a_transient_failure(make: Make, sleeps: list[float]) -> None:
    delivery = make(SmtpDouble(SmtpHandler(), free_port()), attempts=2).send(email())
    assert (delivery.status, delivery.permanent) == ("failed", False)
    assert delivery.reason is not None and delivery.reason.startswith("could not connect")
    assert sleeps == [0.5]


def test_no_webhooks(smtp: SmtpDouble, make: Make) -> None:
    with pytest.raises(WebhookRejected):
        make(smtp).parse_webhook({}, b"")

