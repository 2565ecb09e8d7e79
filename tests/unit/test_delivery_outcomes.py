"""What the delivery worker records of a provider's answer: status only moves forward, and an opt-out at the
provider (Twilio 21610, the recipient texted STOP) turns that channel's consent off through the log."""

from __future__ import annotations

from growthengine.channels.delivery import DeliveryWorker
from growthengine.channels.providers.base import Delivery
from growthengine.clock import ManualClock, to_us
from growthengine.domain.messages import Message
from growthengine.engine import Engine


def _ledger(engine: Engine, clock: ManualClock, status: str) -> dict[str, object]:
    now_us = to_us(clock.now())
    engine.ingest([{"type": "identify", "userId": "u1",
                    "traits": {"phone": "+66812345678", "consent": {"sms": True, "push": True}}}])
    with engine.store.transaction() as tx:
        tx.messages.add([Message(id="m1", user_id="u1", flow="promo", step="sms", channel="sms", kind="marketing",
                                 status=status, scheduled_us=now_us, updated_us=now_us, body="ลดราคา")])
    return {"id": 1, "message_id": "m1", "attempts": 0, "provider": "twilio"}


def test_a_sent_answer_does_not_move_a_delivered_message_back(engine: Engine, clock: ManualClock) -> None:
    row = _ledger(engine, clock, "delivered")  # the provider's webhook came first
    with engine.store.transaction() as tx:
        DeliveryWorker._record(tx, row, Delivery.sent("twilio", "SM1"), to_us(clock.now()))
    assert engine.messages(user_id="u1")[0].status == "delivered"


def test_an_opt_out_at_the_provider_is_an_unsubscribe(engine: Engine, clock: ManualClock) -> None:
    row = _ledger(engine, clock, "scheduled")
    with engine.store.transaction() as tx:
        DeliveryWorker._record(tx, row, Delivery.failed("twilio", "21610: unsubscribed recipient", permanent=True,
                                                        unsubscribed=True), to_us(clock.now()))
    engine.process_pending()
    view = engine.user_view("u1")
    assert view is not None
    assert view["traits"]["consent"] == {"sms": False, "push": True}, "only that channel's consent goes"
    assert view["traits"]["phone"] == "+66812345678", "the number is not dead: it stays"
    assert engine.messages(user_id="u1")[0].status == "failed"
    with engine.store.transaction() as tx:
        names = [e.name for e in tx.events.for_user("u1")]
        audit = tx.conn.exec_driver_sql(
            "SELECT channel, granted FROM consent_changes WHERE user_id = 'u1' ORDER BY id").all()
    assert names == ["identify", "unsubscribed"]
    assert [tuple(r) for r in audit][-1] == ("sms", False), "the audit trail has it"
