"""Email over SMTP (smtplib): TLS by default, login optional, text + HTML in UTF-8.

Security (``security``): ``auto`` (the default) is implicit TLS on port 465 (RFC 8314) and STARTTLS, required, on
any other port (587 is the submission port Gmail, Amazon SES and SendGrid serve); a server that does not offer
STARTTLS is refused rather than sent a password in clear. ``none`` is for a relay on this machine only: with a
login it is refused unless the host is a loopback address. Certificates are verified (the system's CAs).

A refused login (535) or a TLS/certificate failure is permanent: it fails the same way until the settings change.

Idempotency: SMTP has no idempotency key. The ``Message-ID`` is derived from our message id
(``<msg_...@domain>``), so a repeated send is the same message to receivers that de-duplicate on it, and the
id is also in ``X-Growth-Message-Id``. SMTP replies keep their own meaning: 5xx is permanent, 4xx transient
(retried here); a refused address (enhanced status 5.1.x) is an invalid address. SMTP has no delivery
webhooks, so :meth:`SmtpProvider.parse_webhook` rejects every request.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal

from pydantic import SecretStr, model_validator

from growthengine.channels.providers.base import (
    CredentialsError,
    Delivery,
    DeliveryEvent,
    OutboundMessage,
    WebhookRejected,
    scrub,
)
from growthengine.channels.providers.config import ProviderConfig
from growthengine.channels.providers.email_headers import MESSAGE_ID_HEADER, unsubscribe_headers
from growthengine.clock import RealClock

log = logging.getLogger(__name__)

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_BAD_ADDRESS = re.compile(r"\b5\.1\.(1|2|3|10)\b")


Security = Literal["auto", "starttls", "tls", "none"]
_LOOPBACK = re.compile(r"^(localhost|127(\.\d{1,3}){3}|::1)$")


class SmtpConfig(ProviderConfig):
    host: str
    port: int = 587
    security: Security = "auto"
    # Older spellings, still read: ``ssl: true`` is ``security: tls``, ``starttls: true`` is ``security: starttls``.
    starttls: bool | None = None
    ssl: bool | None = None
    username: str | None = None
    password: SecretStr | None = None
    from_address: str
    from_name: str | None = None
    message_id_domain: str | None = None
    unsubscribe_mailto: str | None = None
    local_hostname: str | None = None

    @property
    def mode(self) -> Literal["starttls", "tls", "none"]:
        """How the connection is secured: implicit TLS, STARTTLS (required), or not at all."""
        if self.ssl:
            return "tls"
        if self.starttls:
            return "starttls"
        if self.security != "auto":
            return self.security
        if self.starttls is False and self.ssl is False:
            return "none"
        return "tls" if self.port == 465 else "starttls"

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> SmtpConfig:
        if self.mode == "none" and self.username and not _LOOPBACK.match(self.host):
            raise ValueError("security none with a login would send the password in clear; use starttls (port 587) "
                             "or tls (port 465)")
        return self


class SmtpProvider:
    channel = "email"
    name = "smtp"

    def __init__(self, config: SmtpConfig, *, ssl_context: ssl.SSLContext | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], dt.datetime] | None = None) -> None:
        self.config = config
        self._ssl_context = ssl_context
        self._sleep = sleep
        self._now = now or RealClock().now
        self._policy = config.retry_policy()
        self._domain = config.message_id_domain or config.from_address.rpartition("@")[2] or "localhost"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **kwargs: Any) -> SmtpProvider:
        return cls(SmtpConfig.from_settings(settings), **kwargs)

    def build(self, msg: OutboundMessage) -> EmailMessage:
        """The MIME message for ``msg``: text (and HTML) in UTF-8, headers encoded as RFC 2047 where needed."""
        mail = EmailMessage()
        local, _, domain = self.config.from_address.rpartition("@")
        mail["From"] = Address(display_name=self.config.from_name or "", username=local, domain=domain)
        mail["To"] = msg.to
        mail["Subject"] = msg.subject or msg.title or ""
        mail["Date"] = format_datetime(self._now())
        mail["Message-ID"] = self.message_id(msg.id)
        mail[MESSAGE_ID_HEADER] = msg.id
        if msg.kind == "marketing":
            for name, value in unsubscribe_headers(msg.id, msg.unsubscribe_url, self.config.unsubscribe_mailto).items():
                mail[name] = value
        mail.set_content(msg.body, charset="utf-8", cte="base64")
        if msg.html:
            mail.add_alternative(msg.html, subtype="html", charset="utf-8", cte="base64")
        return mail

    def message_id(self, our_id: str) -> str:
        return f"<{_ID_UNSAFE.sub('-', our_id)}@{self._domain}>"

    def send(self, msg: OutboundMessage) -> Delivery:
        mail = self.build(msg)
        reason = "no attempt made"
        for attempt in range(1, self._policy.attempts + 1):
            try:
                smtp = self._connect()
            except smtplib.SMTPAuthenticationError as exc:
                log.warning("smtp: %s refused the login (%s); fix the username or password", self.config.host,
                            exc.smtp_code)
                return Delivery.failed(self.name, f"SMTP login refused: {exc.smtp_code}", permanent=True)
            except smtplib.SMTPNotSupportedError as exc:
                return Delivery.failed(self.name, f"SMTP server unsuitable: {_text(str(exc))}", permanent=True)
            except ssl.SSLCertVerificationError as exc:
                return Delivery.failed(self.name, f"TLS certificate refused: {exc.verify_message}", permanent=True)
            except ssl.SSLError as exc:  # TLS spoken to a plain port or the reverse: the port and security disagree
                return Delivery.failed(self.name, f"TLS failed: {exc.reason or type(exc).__name__}", permanent=True)
            except (smtplib.SMTPException, OSError) as exc:
                reason = f"could not connect ({type(exc).__name__})"
            else:
                try:
                    smtp.send_message(mail, from_addr=self.config.from_address, to_addrs=[msg.to])
                except smtplib.SMTPRecipientsRefused as exc:
                    code, text = next(iter(exc.recipients.values()), (550, b""))
                    failed = self._refused(msg.id, code, text)
                    if failed is not None:
                        return failed
                    reason = f"SMTP {code}: {_text(text)}"
                except smtplib.SMTPResponseException as exc:
                    failed = self._refused(msg.id, exc.smtp_code, exc.smtp_error)
                    if failed is not None:
                        return failed
                    reason = f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}"
                except (smtplib.SMTPException, OSError) as exc:
                    reason = f"connection lost ({type(exc).__name__})"
                else:
                    _quit(smtp)
                    return Delivery.sent(self.name, str(mail["Message-ID"]))
                _quit(smtp)
            if attempt < self._policy.attempts:
                log.warning("smtp send of message %s failed (%s), attempt %d of %d", msg.id,
                            reason.split(":")[0], attempt, self._policy.attempts)
                self._sleep(self._policy.delay(attempt))
        return Delivery.failed(self.name, reason, permanent=False)

    def _refused(self, message_id: str, code: int, text: bytes | str) -> Delivery | None:
        """A permanent failure for a 5xx reply; None for a 4xx (to be retried)."""
        if code < 500:
            return None
        detail = _text(text)
        log.info("smtp refused message %s: %d", message_id, code)
        return Delivery.failed(self.name, f"SMTP {code}: {detail}", permanent=True,
                               invalid_address=bool(_BAD_ADDRESS.search(detail)) or code in (501, 553))

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        mode = cfg.mode
        smtp: smtplib.SMTP
        if mode == "tls":
            smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, local_hostname=cfg.local_hostname, timeout=cfg.timeout_s,
                                    context=self._context())
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, local_hostname=cfg.local_hostname, timeout=cfg.timeout_s)
        try:
            smtp.ehlo()
            if mode == "starttls":
                # starttls() raises SMTPNotSupportedError when the server does not offer it: never fall back to clear.
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if cfg.username:
                smtp.login(cfg.username, cfg.password.get_secret_value() if cfg.password else "")
        except BaseException:
            _quit(smtp)
            raise
        return smtp

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        raise WebhookRejected("smtp has no delivery webhooks; bounces come back as mail to the sender")

    def check_credentials(self) -> None:
        try:
            smtp = self._connect()
        except smtplib.SMTPAuthenticationError as exc:
            raise CredentialsError(f"smtp: login refused by {self.config.host} ({exc.smtp_code})") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise CredentialsError(f"smtp: {self.config.host}:{self.config.port} cannot do what security "
                                   f"{self.config.mode!r} needs ({exc}); port 587 speaks STARTTLS, 465 implicit TLS"
                                   ) from None
        except ssl.SSLError as exc:
            raise CredentialsError(f"smtp: TLS with {self.config.host}:{self.config.port} failed ({exc}); "
                                   "port 587 speaks STARTTLS, 465 implicit TLS") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise CredentialsError(f"smtp: cannot talk to {self.config.host}:{self.config.port} "
                                   f"({type(exc).__name__}: {exc})") from None
        try:
            code, _ = smtp.noop()
        finally:
            _quit(smtp)
        if code != 250:
            raise CredentialsError(f"smtp: {self.config.host} answered NOOP with {code}")


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return scrub(" ".join(text.split()))[:200]
