"""Where business time stands, kept with the data.

An engine on the manual clock records its clock's time in the database (at start and after every advance); an
engine on the real clock records that it runs on the real clock. Commands run later against that database
(``growth segments rebuild``, ``growth flows``, ``growth import``) take the engine's own business time from here:
the stored manual time when the database was last written on a manual clock, else the real clock.
"""

from __future__ import annotations

from typing import Any

from growthengine.clock import Clock, ManualClock, from_us, to_us
from growthengine.storage.unit_of_work import Tx

STATE_KEY = "business_clock"


def remember(tx: Tx, clock: Clock) -> None:
    """Record which clock writes this database, and where a manual one stands."""
    now_us = to_us(clock.now()) if clock.mode == "manual" else None
    tx.state.put(STATE_KEY, {"mode": clock.mode, "now_us": now_us})


def stored_manual_clock(tx: Tx) -> ManualClock | None:
    """A manual clock at the stored time, when the database was last written by an engine on the manual clock."""
    doc: Any = tx.state.get(STATE_KEY)
    if not isinstance(doc, dict) or doc.get("mode") != "manual":
        return None
    now_us = doc.get("now_us")
    if isinstance(now_us, bool) or not isinstance(now_us, int):
        return None
    return ManualClock(from_us(now_us))
