"""SPEC 5.3: churn-risk users who did not open their last email are synced to the "Winback Campaign" audience
(hashed emails), and removed when they come back."""

from __future__ import annotations

import datetime as dt
import hashlib

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from tests.scenarios.story import Story, messages


def test_winback_audience_add_on_churn_risk_and_remove_on_return(engine: Engine, clock: ManualClock) -> None:
    story = Story(engine, clock)
    story.identify("u1", email=" Somchai@Example.test ", consent={"ads": True})
    story.identify("u2", email="u2@example.test", consent={"ads": False})
    for user in ("u1", "u2"):
        start = story.now - dt.timedelta(days=12)
        for d in range(12):
            story.track(user, "app_opened", at=start + dt.timedelta(days=d))
    story.advance(days=32)
    ads = messages(engine, channel="ads")
    assert [(m["userId"], m["step"], m["status"]) for m in ads] == [("u1", "add", "sent"),
                                                                    ("u2", "add", "suppressed")]
    assert ads[1]["reason"] == "consent"
    with engine.store.transaction() as tx:
        [row] = tx.messages.outbox(channel="ads")
    assert row["payload"]["email_sha256"] == hashlib.sha256(b"somchai@example.test").hexdigest()
    assert row["payload"]["audience"] == "Winback Campaign"
    story.track("u1", "app_opened")
    story.advance(days=1)
    assert [(m["userId"], m["step"]) for m in messages(engine, channel="ads")][-1] == ("u1", "remove")
