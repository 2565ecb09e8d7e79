"""New runs are written once, as their first pass leaves them, with the ids their messages carry; the render cache
reuses a copy only for values that render alike."""

from __future__ import annotations

import pytest

from growthengine.clock import ManualClock
from growthengine.content.templates import RenderError
from growthengine.engine import Engine
from tests.scenarios.story import Story, messages

CONSENT = {"push": True, "email": True, "in_app": True}


def test_a_price_drop_stores_each_run_once_completed_with_its_message(engine: Engine, clock: ManualClock) -> None:
    story = Story(engine, clock)
    story.track("seller", "listing_created", listing_id="L9", title="Leica M6", price=50000)
    for user, language in (("th1", "th"), ("th2", "th"), ("en1", "en")):
        story.identify(user, push_token=f"tok-{user}", language=language, consent=CONSENT)
        story.track(user, "favorite_added", listing_id="L9")
    story.track("seller", "listing_price_changed", listing_id="L9", old_price=50000, new_price=40000)
    sent = {m["userId"]: m for m in messages(engine, flow="price_drop")}
    assert sorted(sent) == ["en1", "th1", "th2"]
    assert sent["en1"]["body"].startswith("Price drop! Leica M6 is now only ฿40,000")
    assert sent["th1"]["body"].startswith("ราคาลงแล้ว! Leica M6 เหลือเพียง ฿40,000")
    with engine.store.transaction() as tx:
        for user in sent:
            [run] = [r for r in tx.runs.for_user(user) if r.flow == "price_drop"]
            assert (run.status, run.entity) == ("completed", "L9")
            [message] = tx.messages.for_run(run.id)
            assert message.user_id == user and message.status == "sent"
        ids = [r.id for user in sent for r in tx.runs.for_user(user)]
    assert len(set(ids)) == len(ids) == 3
    # A second drop starts new runs (the first ones completed) with ids after theirs.
    story.track("seller", "listing_price_changed", listing_id="L9", old_price=40000, new_price=30000)
    with engine.store.transaction() as tx:
        later = [r.id for user in sent for r in tx.runs.for_user(user) if r.id not in ids]
    assert len(later) == 3 and min(later) > max(ids)


def test_the_render_cache_tells_equal_values_of_other_types_apart(engine: Engine) -> None:
    runner = engine.flows.runner
    context = {"product": "X", "old_price": 4500, "new_price": 1}
    assert "฿1 " in runner._render("price_drop_push", "en", context).body
    with pytest.raises(RenderError, match="amount must be a number"):
        runner._render("price_drop_push", "en", {**context, "new_price": True})  # True == 1, but not a price
    assert runner._render("price_drop_push", "th", {**context, "user_context": ["camera"]}).language == "th"
