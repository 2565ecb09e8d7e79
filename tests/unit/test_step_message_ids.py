"""A flow step's message id: deterministic, unique per run and step, and in the order of its runs (so a batch's
ledger, outbox and KPI rows append to their message-id indexes)."""

from __future__ import annotations

from growthengine.clock import ManualClock
from growthengine.domain.messages import message_id, step_message_id
from growthengine.engine import Engine
from tests.scenarios.story import Story

CONSENT = {"push": True, "email": True, "in_app": True}


def test_the_same_run_and_step_give_the_same_id_and_others_another() -> None:
    one = step_message_id("price_drop", "u1", "L9", 41, "price_drop_push")
    assert one == step_message_id("price_drop", "u1", "L9", 41, "price_drop_push")
    others = {step_message_id("price_drop", "u1", "L9", 41, "other_step"),
              step_message_id("price_drop", "u2", "L9", 41, "price_drop_push"),
              step_message_id("price_drop", "u1", "L8", 41, "price_drop_push"),
              step_message_id("cart", "u1", "L9", 41, "price_drop_push"),
              step_message_id("price_drop", "u1", "L9", 42, "price_drop_push")}
    assert one not in others and len(others) == 5
    assert one.startswith("msg_00000000002") and len(one) == 36 <= 40  # the ledger's id column holds 40
    assert one != message_id("price_drop", "u1", "L9", 41, "price_drop_push")


def test_ids_sort_as_their_runs_do() -> None:
    runs = [3, 9, 10, 255, 256, 4096, 10**9, 2**47]
    ids = [step_message_id("f", f"user{-r}", None, r, "s") for r in runs]
    assert sorted(ids) == ids


def test_a_price_drops_ledger_rows_are_in_run_order(engine: Engine, clock: ManualClock) -> None:
    story = Story(engine, clock)
    story.track("seller", "listing_created", listing_id="L9", title="Leica M6", price=50000)
    for n in range(12):
        user = f"fan-{(n * 7) % 12:02d}"  # favorited in an order unlike the ids' hash order
        story.identify(user, push_token=f"tok-{user}", language="th", consent=CONSENT)
        story.track(user, "favorite_added", listing_id="L9")
    story.track("seller", "listing_price_changed", listing_id="L9", old_price=50000, new_price=40000)
    with engine.store.transaction() as tx:
        sent = tx.messages.query(flow="price_drop", limit=100)
        assert len(sent) == 12
        by_run = sorted(sent, key=lambda m: m.run_id or 0)
        assert [m.id for m in by_run] == sorted(m.id for m in sent)
        for m in sent:
            [run] = [r for r in tx.runs.for_user(m.user_id) if r.flow == "price_drop"]
            assert m.id == step_message_id("price_drop", m.user_id, run.entity, run.id, m.step)
