"""SES v2 through boto3: against moto (in process) and against a local HTTP double of the SESv2 REST API; SES
events through SNS, signed for real with a local certificate."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws
from moto.ses.models import ses_backends
from pytest_httpserver import HTTPServer
from werkzeug import Response

from growthengine.channels.providers.base import CredentialsError, OutboundMessage, WebhookRejected
from growthengine.channels.providers.ses import SesConfig, SesProvider
from growthengine.channels.providers.sns import aws_url_allowed
from tests.integration.channels.doubles import CERT_PATH, ses_notification, sign_sns, sns_cert

SEND = "/v2/email/outbound-emails"
TOPIC = "arn:aws:sns:ap-southeast-1:123456789012:ses-events"
MID = "msg_5e5e5e5e5e5e5e5e5e5e5e5e"
SUBJECT = "ลดให้พิเศษ 5% เฉพาะคุณ 🏷️"
MOTO_ACCOUNT = "123456789012"  # moto's default account
SYSTEM_NOW = dt.datetime(2026, 1, 5, 2, 1, tzinfo=dt.UTC)  # a minute after the notifications were signed
FAKE_KEYS = {"access_key_id": "AKIATESTTESTTEST", "secret_access_key": "secret"}


def email(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "id": MID, "user_id": "u-42", "channel": "email", "kind": "marketing", "to": "somchai@example.co.th",
        "subject": SUBJECT, "body": "คูปอง SAVE5-XYZ ใช้ได้ 24 ชม.", "html": "<p>คูปอง <b>SAVE5-XYZ</b></p>",
        "unsubscribe_url": "https://jaikod.test/u/unsub?m=" + MID,
    }
    fields.update(overrides)
    return OutboundMessage(**fields)


Make = Callable[..., SesProvider]


@pytest.fixture
def make(server: HTTPServer, sleeps: list[float], http: httpx.Client) -> Make:
    """An SES provider on the local SESv2 double; SNS certificates may come from the same local server."""
    server.expect_request(CERT_PATH).respond_with_data(sns_cert()[1], content_type="application/x-pem-file")

    def build(**settings: Any) -> SesProvider:
        config = SesConfig.from_settings({"region": "ap-southeast-1", "from_address": "deals@jaikod.test",
                                          "from_name": "JaiKod ใจกด", "endpoint_url": server.url_for(""),
                                          "configuration_set": "growth-events", "topic_arns": [TOPIC],
                                          "unsubscribe_mailto": "unsubscribe@jaikod.test", "backoff_s": 0.25,
                                          **FAKE_KEYS, **settings})
        return SesProvider(config, http=http, url_allowed=lambda url: url.startswith(server.url_for("/")),
                           sleep=sleeps.append, system_now=lambda: SYSTEM_NOW)

    return build


def test_the_request_carries_the_tag_the_headers_and_utf8_content(server: HTTPServer, make: Make) -> None:
    server.expect_request(SEND, method="POST").respond_with_json({"MessageId": "0100-ses-1"})
    delivery = make().send(email())
    assert (delivery.status, delivery.provider_id) == ("sent", "0100-ses-1")
    body = json.loads(server.log[-1][0].get_data())
    assert body["Destination"] == {"ToAddresses": ["somchai@example.co.th"]}
    assert body["FromEmailAddress"].startswith("=?utf-8?") and body["FromEmailAddress"].endswith("<deals@jaikod.test>")
    assert body["EmailTags"] == [{"Name": "message_id", "Value": MID}, {"Name": "kind", "Value": "marketing"}]
    assert body["ConfigurationSetName"] == "growth-events"
    simple = body["Content"]["Simple"]
    assert simple["Subject"] == {"Data": SUBJECT, "Charset": "UTF-8"}
    assert simple["Body"]["Html"]["Data"] == "<p>คูปอง <b>SAVE5-XYZ</b></p>"
    headers = {h["Name"]: h["Value"] for h in simple["Headers"]}
    assert headers == {
        "X-Growth-Message-Id": MID,
        "List-Unsubscribe": f"<mailto:unsubscribe@jaikod.test?subject=unsubscribe%20{MID}>, "
                            f"<https://jaikod.test/u/unsub?m={MID}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_transactional_mail_has_no_unsubscribe_headers(server: HTTPServer, make: Make) -> None:
    server.expect_request(SEND, method="POST").respond_with_json({"MessageId": "0100-ses-2"})
    make().send(email(kind="transactional", html=None))
    simple = json.loads(server.log[-1][0].get_data())["Content"]["Simple"]
    assert [h["Name"] for h in simple["Headers"]] == ["X-Growth-Message-Id"]
    assert "Html" not in simple["Body"]


def _aws_error(status: int, code: str, message: str) -> Response:
    return Response(json.dumps({"message": message}), status=status, content_type="application/json",
                    headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/"})


def test_a_rejected_message_is_permanent(server: HTTPServer, make: Make, sleeps: list[float]) -> None:
    server.expect_request(SEND).respond_with_response(
        _aws_error(400, "MessageRejected", "Email address is not verified: somchai@example.co.th"))
    delivery = make().send(email())
    assert (delivery.status, delivery.permanent) == ("failed", True)
    assert delivery.reason == "HTTP 400: MessageRejected: Email address is not verified: <address>"
    assert sleeps == []


def test_throttling_and_5xx_are_retried(server: HTTPServer, make: Make, sleeps: list[float]) -> None:
    server.expect_oneshot_request(SEND).respond_with_response(_aws_error(429, "TooManyRequestsException", "slow"))
    server.expect_oneshot_request(SEND).respond_with_response(_aws_error(500, "InternalFailure", "oops"))
    server.expect_request(SEND).respond_with_json({"MessageId": "0100-ses-3"})
    assert make().send(email()).status == "sent"
    assert sleeps == [0.25, 0.5]


def test_an_unreachable_endpoint_is_transient(make: Make, sleeps: list[float]) -> None:
    delivery = make(endpoint_url="http://127.0.0.1:9", attempts=2, timeout_s=1).send(email())
    assert (delivery.status, delivery.permanent) == ("failed", False)
    assert delivery.reason is not None and "could not reach SES" in delivery.reason


# -- moto ------------------------------------------------------------------------------------------------------

@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


def test_sends_through_moto_and_checks_the_identity(aws: None, sleeps: list[float], http: httpx.Client) -> None:
    provider = SesProvider(SesConfig.from_settings({"region": "us-east-1", "from_address": "deals@jaikod.test",
                                                    **FAKE_KEYS}), http=http, sleep=sleeps.append)
    with pytest.raises(CredentialsError, match=r"neither deals@jaikod\.test nor its domain"):
        provider.check_credentials()
    boto3.client("sesv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y") \
        .create_email_identity(EmailIdentity="jaikod.test")
    provider.check_credentials()
    delivery = provider.send(email(html=None))
    assert delivery.status == "sent" and delivery.provider_id
    sent = ses_backends[MOTO_ACCOUNT]["us-east-1"].sent_messages
    assert len(sent) == 1
    assert sent[0].subject == SUBJECT
    assert sent[0].body == "คูปอง SAVE5-XYZ ใช้ได้ 24 ชม."
    assert sent[0].destinations["ToAddresses"] == ["somchai@example.co.th"]


# -- SNS webhooks ----------------------------------------------------------------------------------------------

def delivered_event(**mail: Any) -> dict[str, Any]:
    return {"eventType": "Delivery",
            "mail": {"timestamp": "2026-01-05T02:00:00.000Z", "messageId": "0100-ses-1",
                     "tags": {"ses:configuration-set": ["growth-events"], "message_id": [MID]}, **mail},
            "delivery": {"timestamp": "2026-01-05T02:00:04.133Z", "smtpResponse": "250 2.6.0 Message received"}}


def post(server: HTTPServer, message: dict[str, Any], version: str = "1") -> tuple[dict[str, str], bytes]:
    signed = sign_sns(message, server.url_for(CERT_PATH), version)
    return {"x-amz-sns-message-type": signed["Type"]}, json.dumps(signed).encode()


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_delivery_notification(server: HTTPServer, make: Make, version: str) -> None:
    events = make().parse_webhook(*post(server, ses_notification(delivered_event()), version))
    assert [(e.message_id, e.status, e.raw_type, e.provider) for e in events] == [(MID, "delivered", "Delivery", "ses")]
    assert events[0].at == dt.datetime(2026, 1, 5, 2, 0, 4, 133000, tzinfo=dt.UTC)


@pytest.mark.parametrize(("event_type", "section", "detail", "status", "reason"), [
    ("Bounce", "bounce", {"bounceType": "Permanent", "bounceSubType": "General"}, "bounced", "Permanent/General"),
    ("Complaint", "complaint", {"complaintFeedbackType": "abuse"}, "complained", "abuse"),
    ("Open", "open", {"ipAddress": "192.0.2.1"}, "opened", None),
    ("Click", "click", {"link": "https://jaikod.test/l/L1?u=somchai"}, "clicked", None),
    ("Reject", "reject", {"reason": "Bad content"}, "failed", "Bad content"),
])
def test_event_types_map_to_our_statuses(server: HTTPServer, make: Make, event_type: str, section: str,
                                         detail: dict[str, Any], status: str, reason: str | None) -> None:
    event = {"eventType": event_type, "mail": delivered_event()["mail"],
             section: {"timestamp": "2026-01-05T03:00:00Z", **detail}}
    [parsed] = make().parse_webhook(*post(server, ses_notification(event), "2"))
    assert (parsed.status, parsed.reason, parsed.at.hour) == (status, reason, 3)


def test_the_header_is_the_fallback_when_tags_are_missing(server: HTTPServer, make: Make) -> None:
    event = delivered_event(tags={}, headers=[{"name": "x-growth-message-id", "value": "msg_from_header"}])
    [parsed] = make().parse_webhook(*post(server, ses_notification(event)))
    assert parsed.message_id == "msg_from_header"


def test_send_events_and_mail_we_did_not_send_give_nothing(server: HTTPServer, make: Make) -> None:
    provider = make()
    send_event = dict(delivered_event(), eventType="Send")
    assert provider.parse_webhook(*post(server, ses_notification(send_event))) == []
    assert provider.parse_webhook(*post(server, ses_notification(delivered_event(tags={})))) == []


def confirmation(server: HTTPServer, topic: str = TOPIC, url: str | None = None) -> dict[str, Any]:
    """A SubscriptionConfirmation shaped as AWS documents it (SubscribeURL with Action, TopicArn and Token)."""
    token = "2336412f37fb687f5d51e6e2425dacbba1e0c3ad6dd0d4b7b8a5d87a0a8c9c9d"
    return {"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b", "Token": token,
            "TopicArn": topic, "Timestamp": "2026-01-05T02:00:30.000Z",
            "Message": f"You have chosen to subscribe to the topic {topic}.\nTo confirm the subscription, visit the "
                       "SubscribeURL included in this message.",
            "SubscribeURL": url or server.url_for("/") + f"?Action=ConfirmSubscription&TopicArn={topic}&Token={token}"}


CONFIRMED = """<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:ap-southeast-1:123456789012:ses-events:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55</SubscriptionArn></ConfirmSubscriptionResult>
  <ResponseMetadata><RequestId>075ecce8-8dac-11e1-bf80-f781d96e9307</RequestId></ResponseMetadata>
</ConfirmSubscriptionResponse>"""


def test_a_subscription_confirmation_is_confirmed_after_verification(server: HTTPServer, make: Make) -> None:
    server.expect_request("/", method="GET", query_string={"Action": "ConfirmSubscription", "TopicArn": TOPIC,
                                                            "Token": confirmation(server)["Token"]}) \
        .respond_with_data(CONFIRMED, content_type="text/xml")
    provider = make()
    headers, body = post(server, confirmation(server))
    assert headers == {"x-amz-sns-message-type": "SubscriptionConfirmation"}
    assert provider.parse_webhook(headers, body) == []
    visits = [r for r, _ in server.log if r.path == "/" and r.args.get("Action") == "ConfirmSubscription"]
    assert len(visits) == 1 and visits[0].method == "GET"
    assert provider.subscribe_url(headers, body) == confirmation(server)["SubscribeURL"]


def test_a_confirmation_that_is_not_ours_is_never_visited(server: HTTPServer, make: Make) -> None:
    server.expect_request("/").respond_with_data(CONFIRMED)
    provider = make()
    other = "arn:aws:sns:us-east-1:999999999999:not-ours"
    with pytest.raises(WebhookRejected, match="not ours"):
        provider.parse_webhook(*post(server, confirmation(server, topic=other)))
    headers, body = post(server, confirmation(server))
    forged = json.loads(body)
    forged["SubscribeURL"] = server.url_for("/") + "?Action=ConfirmSubscription&Token=forged"
    with pytest.raises(WebhookRejected, match="does not match"):
        provider.parse_webhook(headers, json.dumps(forged).encode())
    offsite = post(server, confirmation(server, url="https://attacker.example/?Action=ConfirmSubscription"))
    with pytest.raises(WebhookRejected, match="allowed SNS host"):
        provider.parse_webhook(*offsite)
    assert not [r for r, _ in server.log if r.path == "/"]


def test_a_failed_confirmation_is_refused_so_sns_sends_it_again(server: HTTPServer, make: Make) -> None:
    server.expect_request("/").respond_with_data("<ErrorResponse/>", status=403)
    with pytest.raises(WebhookRejected, match="HTTP 403"):
        make().parse_webhook(*post(server, confirmation(server)))


def test_without_topic_arns_no_sns_message_is_trusted(server: HTTPServer, make: Make) -> None:
    with pytest.raises(WebhookRejected, match="no topic_arns"):
        make(topic_arns=[]).parse_webhook(*post(server, ses_notification(delivered_event())))


def test_an_sns_message_signed_more_than_five_minutes_ago_is_refused(server: HTTPServer, make: Make) -> None:
    [event] = make().parse_webhook(*post(server, ses_notification(delivered_event())))
    assert (event.event_id, event.signed_at) == ("5f7c-sns-1", dt.datetime(2026, 1, 5, 2, 0, 5, tzinfo=dt.UTC))
    stale = dict(ses_notification(delivered_event()), Timestamp="2026-01-05T01:55:59.000Z")
    with pytest.raises(WebhookRejected, match="300s from now"):
        make().parse_webhook(*post(server, stale))
    assert len(make(webhook_max_age_s=900).parse_webhook(*post(server, stale))) == 1


def _tamper(server: HTTPServer) -> tuple[dict[str, str], bytes]:
    headers, body = post(server, ses_notification(delivered_event()))
    signed = json.loads(body)
    signed["Message"] = signed["Message"].replace(MID, "msg_someone_else")
    return headers, json.dumps(signed).encode()


def test_bad_messages_are_rejected(server: HTTPServer, make: Make) -> None:
    provider = make()
    with pytest.raises(WebhookRejected, match="does not match"):
        provider.parse_webhook(*_tamper(server))
    headers, body = post(server, ses_notification(delivered_event(), topic="arn:aws:sns:us-east-1:999:other"))
    with pytest.raises(WebhookRejected, match="not ours"):
        provider.parse_webhook(headers, body)
    with pytest.raises(WebhookRejected, match="not JSON"):
        provider.parse_webhook({}, b"Type=Notification")
    with pytest.raises(WebhookRejected, match="header does not match"):
        provider.parse_webhook({"x-amz-sns-message-type": "SubscriptionConfirmation"},
                               post(server, ses_notification(delivered_event()))[1])


def test_a_certificate_off_the_allowed_hosts_is_never_fetched(server: HTTPServer, sleeps: list[float],
                                                              http: httpx.Client) -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return b""

    provider = SesProvider(SesConfig.from_settings({"region": "ap-southeast-1", "from_address": "d@jaikod.test",
                                                    "topic_arns": [TOPIC], **FAKE_KEYS}),
                           http=http, fetch=fetch, sleep=sleeps.append, system_now=lambda: SYSTEM_NOW)
    with pytest.raises(WebhookRejected, match="allowed SNS host"):
        provider.parse_webhook(*post(server, ses_notification(delivered_event())))
    assert fetched == []


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://sns.ap-southeast-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
    ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem", True),
    ("http://sns.ap-southeast-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
    ("https://sns.ap-southeast-1.amazonaws.com.evil.example/x.pem", False),
    ("https://evil.example/sns.us-east-1.amazonaws.com/x.pem", False),
    ("https://s3.amazonaws.com/x.pem", False),
])
def test_the_production_host_check(url: str, allowed: bool) -> None:
    assert aws_url_allowed(url) is allowed
