"""Frequency caps stay exact when several workers on PostgreSQL decide for the same users at the same time."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from growthengine.clock import ManualClock, to_us
from growthengine.domain.messages import Message, message_id
from growthengine.flows.dispatch import Outgoing
from tests.conftest import START, make_engine
from tests.pg_cluster import PgCluster
from tests.waiting import run_together

pytestmark = pytest.mark.postgres
USERS = [f"u{n}" for n in range(60)]
TRAITS = {"push_token": "t", "consent": {"push": True}, "timezone": "Asia/Bangkok"}


def test_four_workers_never_send_two_marketing_pushes_in_a_day(pg_cluster: PgCluster, tmp_path: Path) -> None:
    url = pg_cluster.new_database()
    clock = ManualClock(START + dt.timedelta(hours=2))  # 11:00 Bangkok: no quiet hours
    engines = [make_engine(url, clock, tmp_path / f"w{i}") for i in range(4)]
    engines[0].ingest([{"type": "identify", "userId": u, "traits": TRAITS} for u in USERS])
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        engine = engines[index]
        now_us = to_us(clock.now())
        out = Outgoing()
        for user in USERS:
            out.add(Message(id=message_id("promo", user, index), user_id=user, flow=f"promo{index}", step="push",
                            channel="push", kind="marketing", status="scheduled", scheduled_us=now_us,
                            updated_us=now_us, body="ลดราคา"), TRAITS, 0.0)
        try:
            barrier.wait(timeout=30)
            with engine.store.transaction() as tx:
                engine.flows.dispatcher.flush(tx, out, now_us)
        except BaseException as exc:
            errors.append(exc)

    run_together(worker, len(engines))
    try:
        assert not errors, errors
        sent = [m for m in engines[0].messages(limit=10_000) if m.status == "sent"]
        capped = [m for m in engines[0].messages(limit=10_000) if m.reason == "frequency_cap"]
        assert sorted(m.user_id for m in sent) == sorted(USERS), "exactly one push per user went out"
        assert len(capped) == len(USERS) * (len(engines) - 1)
    finally:
        for engine in engines:
            engine.close()
