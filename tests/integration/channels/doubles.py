"""Real local doubles for the channel providers: an HTTP server, an SMTP server, and real keys and signatures.

Everything listens on 127.0.0.1. Keys are made here, per test session: an RSA key for a service account (its
JWTs are verified by the token endpoint double), a self-signed certificate that signs SNS messages the way AWS
does, and an ECDSA P-256 pair that signs SendGrid events.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

TOKEN_PATH = "/token"
CERT_PATH = "/SimpleNotificationService-test.pem"


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def service_account(token_uri: str, project_id: str = "jaikod-test") -> dict[str, Any]:
    """A service account key file's content, with a throw-away key and a local token endpoint."""
    return {
        "type": "service_account", "project_id": project_id, "private_key_id": "test-key-1",
        "private_key": _pem(rsa_key()), "client_email": f"growth@{project_id}.iam.gserviceaccount.com",
        "client_id": "1234567890", "token_uri": token_uri,
    }


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass
class TokenEndpoint:
    """An OAuth2 token endpoint that checks each JWT assertion against the service account's public key."""

    issued: list[dict[str, Any]] = field(default_factory=list)
    refuse: bool = False

    def install(self, server: HTTPServer) -> str:
        server.expect_request(TOKEN_PATH, method="POST").respond_with_handler(self.handle)
        return server.url_for(TOKEN_PATH)

    def handle(self, request: Request) -> Response:
        form = request.form
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        head, payload, signature = form["assertion"].split(".")
        rsa_key().public_key().verify(_b64url_decode(signature), f"{head}.{payload}".encode(),
                                      padding.PKCS1v15(), hashes.SHA256())
        claims = json.loads(_b64url_decode(payload))
        # google-auth always addresses the assertion to Google's token URI, wherever it posts it.
        assert claims["aud"] == "https://oauth2.googleapis.com/token", claims
        assert claims["iss"].endswith(".iam.gserviceaccount.com"), claims
        if self.refuse:
            return Response(json.dumps({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
                            status=400, content_type="application/json")
        self.issued.append(claims)
        body = {"access_token": f"ya29.test-{len(self.issued)}", "expires_in": 3600, "token_type": "Bearer"}
        return Response(json.dumps(body), content_type="application/json")


# -- SNS ------------------------------------------------------------------------------------------------------

@functools.cache
def sns_cert() -> tuple[rsa.RSAPrivateKey, bytes]:
    """A self-signed certificate (and its key) standing in for AWS's SNS signing certificate."""
    key = rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test.local")])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(start + dt.timedelta(days=365 * 30))
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


_SNS_KEYS = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
}


def sign_sns(message: dict[str, Any], cert_url: str, version: str = "1") -> dict[str, Any]:
    """``message`` signed as SNS signs: RSA over ``Key\\nValue\\n`` of the signed keys (SHA1 v1, SHA256 v2)."""
    signed = dict(message, SignatureVersion=version, SigningCertURL=cert_url)
    text = "".join(f"{k}\n{signed[k]}\n" for k in _SNS_KEYS[signed["Type"]] if k in signed)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = sns_cert()[0].sign(text.encode(), padding.PKCS1v15(), algorithm)
    signed["Signature"] = base64.b64encode(signature).decode()
    return signed


def ses_notification(event: dict[str, Any], *, topic: str = "arn:aws:sns:ap-southeast-1:123456789012:ses-events",
                     ) -> dict[str, Any]:
    return {"Type": "Notification", "MessageId": "5f7c-sns-1", "TopicArn": topic,
            "Message": json.dumps(event), "Timestamp": "2026-01-05T02:00:05.000Z"}


# -- SendGrid -------------------------------------------------------------------------------------------------

@functools.cache
def sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """An ECDSA P-256 pair; the public half as SendGrid shows it (base64 DER)."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


def sendgrid_sign(body: bytes, timestamp: str, key: ec.EllipticCurvePrivateKey | None = None) -> dict[str, str]:
    signer = key or sendgrid_keys()[0]
    signature = signer.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}


def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- SMTP -----------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpHandler:
    """Keeps every accepted message; ``replies`` queues answers to DATA (``None``: accept)."""

    def __init__(self) -> None:
        self.received: list[tuple[Envelope, EmailMessage]] = []
        self.data_replies: list[str] = []
        self.rcpt_replies: list[str] = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            reply = self.rcpt_replies.pop(0) if self.rcpt_replies else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        with self.lock:
            reply = self.data_replies.pop(0) if self.data_replies else None
            if reply:
                return reply
            raw = envelope.original_content or b""
            parsed = message_from_bytes(raw, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            self.received.append((envelope, parsed))
        return "250 Message accepted for delivery"

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.data_replies.clear()
            self.rcpt_replies.clear()


@dataclass
class SmtpDouble:
    handler: SmtpHandler
    port: int
    client_context: ssl.SSLContext | None = None


def _authenticator(server: SMTPServer, session: Session, envelope: Envelope, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"growth", b"s3cret")
    return AuthResult(success=ok, handled=False)


def tls_contexts(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client context that trusts it."""
    key, _ = sns_cert()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(2).not_valid_before(start).not_valid_after(start + dt.timedelta(days=365 * 30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_text(_pem(key))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


@contextmanager
def run_smtp(*, tls_dir: Path | None = None, implicit: bool = False) -> Iterator[SmtpDouble]:
    """An aiosmtpd server on 127.0.0.1: plain; with STARTTLS and AUTH required when ``tls_dir`` is given (as on
    port 587); or TLS from the first byte with AUTH (``implicit``, as on port 465, RFC 8314)."""
    handler = SmtpHandler()
    port = free_port()
    client_context = None
    if tls_dir is None:
        controller = Controller(handler, hostname="127.0.0.1", port=port)
    elif implicit:
        server_context, client_context = tls_contexts(tls_dir)
        controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=server_context,
                                authenticator=_authenticator, auth_require_tls=False)
    else:
        server_context, client_context = tls_contexts(tls_dir)
        controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=server_context,
                                require_starttls=True, authenticator=_authenticator, auth_require_tls=True)
    controller.start()
    try:
        yield SmtpDouble(handler, port, client_context)
    finally:
        controller.stop()
