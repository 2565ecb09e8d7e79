"""Two workers recomputing their users' KPIs at once on PostgreSQL never deadlock on the shared rollup rows.

Each worker's KPI tail moves rows that every worker shares (a day's reasons, a month's, the current counts per
status). Seen with two `growth worker` processes on one backlog: one tail moved a day's reasons row, then the month's
and the current counts for a first chunk of its users, then the next day's row for a second chunk, while the other
had moved that next day's row first and waited on the month's; PostgreSQL broke the cycle after its 1 s deadlock
timeout by failing one batch, which was done again. The shared rows are now moved once per recompute, table by
table, each in key order, so the second worker waits for the first and never closes a cycle.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from growthengine.analytics import rollups
from growthengine.analytics.recompute import recompute, stored
from growthengine.analytics.rollups import KpiRollups
from growthengine.clock import ManualClock, to_us
from growthengine.domain.messages import Message
from growthengine.engine import Engine
from tests.conftest import make_engine
from tests.pg_cluster import PgCluster

pytestmark = pytest.mark.postgres

DAY_US = 86_400_000_000


@pytest.fixture
def pg_engine(pg_cluster: PgCluster, clock: ManualClock, tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(pg_cluster.new_database(), clock, tmp_path)
    try:
        yield eng
    finally:
        eng.close()


def _capped(mid: str, user: str, at_us: int) -> Message:
    """A message the frequency cap held back: it counts in the reasons of its day, its month and the current
    counts (the same keys for every user on that day)."""
    return Message(id=mid, user_id=user, flow="f", step="s", channel="push", kind="marketing", status="suppressed",
                   reason="frequency_cap", scheduled_us=at_us, updated_us=at_us, body="x")


def test_two_tails_recomputing_at_once_do_not_deadlock(pg_engine: Engine, clock: ManualClock,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    day1 = to_us(clock.now())
    day2 = day1 + DAY_US
    with pg_engine.store.transaction() as tx:
        # Worker A's users sort day 1 then day 2, worker B's day 2 then day 1; z fills both days' calendar first.
        tx.messages.add([_capped("a1", "a1", day1), _capped("a2", "a2", day2), _capped("b1", "b1", day2),
                         _capped("b2", "b2", day1), _capped("z1", "z", day1), _capped("z2", "z", day2)])
    with pg_engine.store.transaction() as tx:
        kpis = KpiRollups(tx.kpis.config())
        kpis.recompute_users(tx, ["z"])
    monkeypatch.setattr(rollups, "USERS_PER_STATEMENT", 1)  # one user a chunk: each worker works chunk by chunk

    a_holds_current = threading.Event()
    b_started = threading.Event()
    errors: list[BaseException] = []

    def pause_after_current(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("INSERT INTO kpi_current") and not a_holds_current.is_set():
            a_holds_current.set()  # A holds the current counts' row now; let B run into it
            b_started.wait(10)
            threading.Event().wait(0.5)

    def worker_a() -> None:
        try:
            with pg_engine.store.transaction() as tx:
                sa.event.listen(tx.conn, "after_cursor_execute", pause_after_current)
                try:
                    kpis.recompute_users(tx, ["a1", "a2"])
                finally:
                    sa.event.remove(tx.conn, "after_cursor_execute", pause_after_current)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            a_holds_current.set()

    def worker_b() -> None:
        try:
            a_holds_current.wait(10)
            with pg_engine.store.transaction() as tx:
                b_started.set()
                kpis.recompute_users(tx, ["b1", "b2"])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            b_started.set()

    threads = [threading.Thread(target=worker_a), threading.Thread(target=worker_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert a_holds_current.is_set(), "worker A never moved the current counts"
    assert not errors, f"a tail failed: {errors[0]!r}"
    with pg_engine.store.transaction() as tx:
        expected = recompute(tx.conn, tx.kpis.config())
        assert stored(tx.conn).reasons == expected.reasons
        assert stored(tx.conn) == expected
        assert sum(expected.current.values()) == 6
