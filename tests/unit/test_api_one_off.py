"""A template previewed for one user and a test message sent now (CONTRACT.md 11)."""

from __future__ import annotations

import pytest

from growthengine.engine import Engine
from tests.unit.api_client import ADMIN, WRITE, api_client, assert_error

pytestmark = pytest.mark.anyio


def _users(engine: Engine) -> None:
    engine.ingest([
        {"type": "identify", "userId": "th_user", "traits": {"push_token": "tok", "phone": "+66812345678",
                                                            "consent": {"push": True, "sms": True}}},
        {"type": "identify", "userId": "en_user", "traits": {"language": "en", "name": "Anan", "push_token": "tok",
                                                            "phone": "+66811111111", "consent": {"push": True}}},
    ])


async def test_preview_in_the_users_language(engine: Engine) -> None:
    _users(engine)
    async with api_client(engine) as client:
        th = (await client.post("/v1/config/templates/notice_sms/preview", json={"userId": "th_user"},
                                headers=ADMIN)).json()
        assert th == {"template": "notice_sms", "channel": "sms", "language": "th",
                      "body": "JaiKod: มีของใหม่ที่คุณน่าจะชอบ ดูเลย https://jaikod.com", "title": None,
                      "subject": None, "html": None, "imageUrl": None, "variant": None}
        en = (await client.post("/v1/config/templates/notice_sms/preview", json={"userId": "en_user"},
                                headers=ADMIN)).json()
        assert en["language"] == "en" and en["body"].startswith("JaiKod: Anan, new finds")
        needs = assert_error(await client.post("/v1/config/templates/cart_nudge_push/preview",
                                               json={"userId": "en_user"}, headers=ADMIN), 422)
        assert "product" in needs["message"]
        given = (await client.post("/v1/config/templates/cart_nudge_push/preview",
                                   json={"userId": "en_user", "values": {"product": "Fuji X100V"}},
                                   headers=ADMIN)).json()
        assert given["title"] == "Your cart is waiting 🛒" and "Fuji X100V" in given["body"]
        assert_error(await client.post("/v1/config/templates/nope/preview", json={"userId": "th_user"},
                                       headers=ADMIN), 404)
        assert_error(await client.post("/v1/config/templates/notice_sms/preview", json={"userId": "ghost"},
                                       headers=ADMIN), 404)
        assert_error(await client.post("/v1/config/templates/notice_sms/preview", json={}, headers=ADMIN), 400)
        assert_error(await client.post("/v1/config/templates/notice_sms/preview", json={"userId": "th_user"},
                                       headers=WRITE), 403)


async def test_a_test_message_goes_through_the_real_send_path_and_consent_applies(engine: Engine) -> None:
    _users(engine)
    async with api_client(engine) as client:
        sent = (await client.post("/v1/messages/test", headers=ADMIN, json={
            "userId": "en_user", "template": "window_shopper_first_buy_push", "channel": "push"})).json()
        assert sent["sent"] is True and sent["reason"] is None, sent
        assert sent["message"]["status"] == "sent" and sent["message"]["title"] == "Found something you like? 👀"
        assert sent["message"]["flow"] == "test"
        listed = (await client.get("/v1/messages?userId=en_user&flow=test", headers=ADMIN)).json()["messages"]
        assert [m["id"] for m in listed] == [sent["message"]["id"]]

        refused = (await client.post("/v1/messages/test", headers=ADMIN, json={
            "userId": "en_user", "template": "notice_sms", "channel": "sms"})).json()
        assert refused["sent"] is False and refused["reason"] == "consent", refused
        assert refused["message"]["status"] == "suppressed"

        sms = (await client.post("/v1/messages/test", headers=ADMIN, json={
            "userId": "th_user", "template": "notice_sms", "channel": "sms"})).json()
        assert sms["message"]["body"].startswith("JaiKod: มีของใหม่"), sms
        assert sms["message"]["status"] in ("sent", "delivered"), sms

        assert_error(await client.post("/v1/messages/test", headers=ADMIN, json={
            "userId": "th_user", "template": "notice_sms", "channel": "push"}), 422)
        assert_error(await client.post("/v1/messages/test", headers=ADMIN, json={
            "userId": "th_user", "template": "notice_sms", "channel": "fax"}), 400)
        assert_error(await client.post("/v1/messages/test", headers=ADMIN, json={
            "userId": "ghost", "template": "notice_sms", "channel": "sms"}), 404)
