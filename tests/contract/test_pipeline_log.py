"""The pipeline's storage contract on both databases: a duplicate is decided by the insert itself, the stage cursor
never skips a row that commits late, leases fence a worker whose lease has passed, and a fan-out reaches each user
through a per-user command in the log."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from growthengine.clock import ManualClock
from growthengine.domain.events import Event
from growthengine.domain.partitions import PARTITIONS, partition_of
from growthengine.domain.profiles import Profile
from growthengine.engine import Engine
from growthengine.pipeline.ownership import LeasedOwnership, LeaseLost, SoleOwner
from growthengine.pipeline.runner import Pipeline
from growthengine.pipeline.stages import Stage
from growthengine.storage.unit_of_work import Store, Tx
from tests.conftest import make_engine
from tests.pg_cluster import PgCluster
from tests.waiting import run_together


class Recorder:
    """A stage consumer that keeps what it was given (to check the cursor's promise: each row once)."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def on_events(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        for event in events:
            self.seen[str(event.properties["n"])] += 1


def test_concurrent_senders_of_one_message_id_apply_it_once(db_url: str, tmp_path: Path, clock: ManualClock) -> None:
    engines = [make_engine(db_url, clock, tmp_path / f"e{i}") for i in range(3)]
    try:
        rounds = 8
        accepted: Counter[int] = Counter()
        duplicates: Counter[int] = Counter()
        for r in range(rounds):
            purchase = {"type": "track", "userId": f"buyer{r}", "event": "purchase", "messageId": f"order-{r}",
                        "properties": {"order_id": f"o{r}", "amount": 3000, "listing_ids": ["L1"]}}
            barrier = threading.Barrier(len(engines))

            def send(engine: Engine, call: dict[str, object] = purchase, r: int = r,
                     barrier: threading.Barrier = barrier) -> None:
                barrier.wait(timeout=30)
                result = engine.ingestion.ingest([call])
                accepted[r] += result.accepted
                duplicates[r] += result.duplicates

            threads = [threading.Thread(target=send, args=(e,)) for e in engines]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
        engines[0].process_pending()
        for r in range(rounds):
            assert (accepted[r], duplicates[r]) == (1, len(engines) - 1), f"round {r}"
            view = engines[0].user_view(f"buyer{r}")
            assert view is not None
            assert "high_ltv" not in view["segments"], "one 3,000 THB purchase, counted once, is not 5,000"
        with engines[0].store.transaction() as tx:
            assert tx.events.count() == rounds
    finally:
        for e in engines:
            e.close()


def test_concurrent_ingestion_of_overlapping_batches_stores_every_call_once(db_url: str, tmp_path: Path,
                                                                          clock: ManualClock) -> None:
    """Engines ingesting at once (several API processes on PostgreSQL) with users in common, new and known, trait
    changes, visitors being identified and one message id sent twice: no error reaches a sender (no deadlock
    between the events' unique message ids and the profile rows, nor between two transactions creating the same
    new profiles), and every call is stored once."""
    engines = [make_engine(db_url, clock, tmp_path / f"e{i}") for i in range(3)]
    errors: list[BaseException] = []
    try:
        for r in range(6):
            barrier = threading.Barrier(len(engines))

            def send(e: int, r: int = r, barrier: threading.Barrier = barrier) -> None:
                rng = random.Random(r * 10 + e)
                users = [f"u{r}-{n}" for n in rng.sample(range(60), 40)]  # new this round, shared between engines
                calls: list[dict[str, object]] = []
                for n, user in enumerate(users):
                    calls.append({"type": "track", "userId": user, "event": "app_opened", "messageId": f"{r}-{e}-{n}"})
                    if n % 3 == 0:
                        calls.append({"type": "identify", "userId": user, "traits": {"name": f"n{e}"},
                                      "messageId": f"{r}-{e}-{n}-i"})
                    if n % 7 == 0:
                        calls.append({"type": "identify", "userId": user, "anonymousId": f"v{r}-{n}",
                                      "messageId": f"{r}-{e}-{n}-a"})
                calls.append({"type": "track", "userId": f"u{r}-0", "event": "purchase", "messageId": f"shared-{r}",
                              "properties": {"order_id": f"o{r}", "amount": 100, "listing_ids": ["L1"]}})
                rng.shuffle(calls)
                barrier.wait(timeout=30)
                try:
                    result = engines[e].ingestion.ingest(calls)
                    assert not result.rejected, result.rejected
                except BaseException as exc:  # reported below, in the test's thread
                    errors.append(exc)

            run_together(send, len(engines))
        assert not errors, errors[:3]
        with engines[0].store.read() as tx:
            stored = tx.events.count()
        expected = 0
        for r in range(6):
            for e in range(len(engines)):
                rng = random.Random(r * 10 + e)
                users = rng.sample(range(60), 40)
                expected += sum(1 + (n % 3 == 0) + (n % 7 == 0) for n in range(len(users)))
            expected += 1  # the shared purchase, once
        assert stored == expected
    finally:
        for engine in engines:
            engine.close()


def test_the_cursor_never_skips_a_row_that_commits_late(db_url: str) -> None:
    store = Store.open(db_url)
    recorder = Recorder()
    pipeline = Pipeline(store, [Stage("recorder", recorder)], SoleOwner(), batch_size=50)
    writers, per_writer = 4, 60
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(w: int) -> None:
        rng = random.Random(w)
        try:
            for i in range(per_writer):
                with store.transaction() as tx:
                    tx.log.append_commands([], 0)
                    tx.events.append([{
                        "message_id": f"w{w}-{i}", "type": "track", "name": "item_viewed", "user_id": f"u{w}",
                        "anonymous_id": None, "ts_us": i, "received_us": i, "payload": f'{{"n": "w{w}-{i}"}}',
                        "extra": None, "partition": 0}])
                    time.sleep(rng.uniform(0, 0.01))  # an id taken early commits late
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        while not stop.is_set():
            pipeline.step()

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    reader.join(timeout=60)
    pipeline.drain()
    store.close()
    assert not errors
    assert len(recorder.seen) == writers * per_writer, "every row was read"
    assert set(recorder.seen.values()) == {1}, "and each exactly once"


@pytest.mark.postgres
def test_leases_share_fairly_and_fence_a_worker_whose_lease_passed(pg_cluster: PgCluster) -> None:
    url = pg_cluster.new_database()
    store = Store.open(url)
    now = [1_000.0]
    a = LeasedOwnership(store, lambda: now[0], worker_id="a")
    b = LeasedOwnership(store, lambda: now[0], worker_id="b")
    try:
        a.refresh()
        assert len(a.partitions()) == PARTITIONS, "a lone worker owns everything"
        b.refresh()  # b is live but everything is held
        assert b.partitions() == ()
        a.refresh()  # a sees two live workers and gives back the extra half
        assert len(a.partitions()) == PARTITIONS // 2
        b.refresh()
        assert len(b.partitions()) == PARTITIONS // 2
        assert not set(a.partitions()) & set(b.partitions())
        # a pauses past its lease; b renews and takes a's share.
        now[0] += 20.0
        b.refresh()
        now[0] += 1.0
        b.refresh()
        assert len(b.partitions()) == PARTITIONS, "a dead worker's share is taken over"
        # a wakes up and tries to write: the fencing check refuses and nothing is written.
        recorder = Recorder()
        pipeline = Pipeline(store, [Stage("recorder", recorder)], a, now_s=lambda: now[0])
        with store.transaction() as tx:
            tx.log.append_commands([("u1", "noop", 0, {"n": "x"})], 0)
        with pytest.raises(LeaseLost):
            pipeline.step()
        with store.transaction() as tx:
            assert tx.log.cursors(["recorder"])["recorder"] == {}, "the stale worker moved no cursor"
    finally:
        store.close()


@pytest.mark.postgres
def test_workers_that_announce_themselves_first_take_their_fair_share_at_once(pg_cluster: PgCluster) -> None:
    """``growth worker`` heartbeats before it takes anything (``JOIN_WAIT_S``): workers started together each take
    half at their first refresh; none takes everything and gives half back (losing the batch it had begun)."""
    store = Store.open(pg_cluster.new_database())
    now = [1_000.0]
    a, b = (LeasedOwnership(store, lambda: now[0], worker_id=w) for w in ("a", "b"))
    try:
        a.announce()
        assert a.partitions() == (), "announcing takes nothing"
        b.announce()
        a.refresh()
        assert len(a.partitions()) == PARTITIONS // 2, "a counts b before it takes"
        b.refresh()
        assert len(b.partitions()) == PARTITIONS // 2
        assert not set(a.partitions()) & set(b.partitions())
    finally:
        store.close()


def _enrolment_commands(tx: Tx) -> int:
    """How many users the log's applied ``flow_enroll`` commands named (a page of one partition's users each, keyed
    by its partition's page key; applied pages keep the count, not the names)."""
    named = 0
    for user_id, partition, payload in tx.conn.exec_driver_sql(
            "SELECT user_id, partition, payload FROM events WHERE type = 'command' AND name = 'flow_enroll'").all():
        page = payload if isinstance(payload, dict) else orjson.loads(payload)
        assert partition_of(user_id) == partition and page["users"] == [], "applied pages name nobody"
        named += page["named"]
    return named


def test_a_price_drop_reaches_each_favoriter_through_a_command(engine: Engine) -> None:
    consent = {"push": True}
    engine.ingest([{"type": "identify", "userId": f"fan{n}", "traits": {"push_token": f"t{n}", "consent": consent}}
                   for n in range(30)])
    engine.ingest([{"type": "track", "userId": f"fan{n}", "event": "favorite_added", "properties": {"listing_id": "L9"}}
                   for n in range(30)])
    engine.ingest([{"type": "track", "userId": "seller", "event": "listing_created",
                    "properties": {"listing_id": "L9", "title": "Fuji", "price": 1000, "category": "cameras"}}])
    engine.ingest([{"type": "track", "userId": "seller", "event": "listing_price_changed",
                    "properties": {"listing_id": "L9", "old_price": 1000, "new_price": 800}}])
    with engine.store.transaction() as tx:
        named = _enrolment_commands(tx)
    assert named == 30, "each favoriter named once"
    pushes = engine.messages(flow="price_drop", channel="push", limit=1000)
    assert sorted(m.user_id for m in pushes) == sorted(f"fan{n}" for n in range(30))
    assert all(m.status == "sent" for m in pushes)


@pytest.mark.postgres
def test_two_workers_split_the_log_by_partition_and_both_catch_up(pg_cluster: PgCluster) -> None:
    store = Store.open(pg_cluster.new_database())
    now = [1_000.0]
    owners = [LeasedOwnership(store, lambda: now[0], worker_id=w) for w in ("a", "b")]
    recorders = [Recorder(), Recorder()]
    try:
        for o in (*owners, *owners):
            o.refresh()
        assert sorted(len(o.partitions()) for o in owners) == [PARTITIONS // 2] * 2
        with store.transaction() as tx:
            tx.log.append_commands([(f"user{n}", "noop", n, {"n": f"c{n}"}) for n in range(500)], 0)
        pipelines = [Pipeline(store, [Stage("recorder", r, {"noop": _record_commands(r)})], o, batch_size=37,
                              now_s=lambda: now[0]) for r, o in zip(recorders, owners, strict=True)]
        for p in pipelines:
            p.drain()
        seen = recorders[0].seen + recorders[1].seen
        assert len(seen) == 500 and set(seen.values()) == {1}, "each row applied once, by its owner"
        assert not set(recorders[0].seen) & set(recorders[1].seen)
        assert [lag.events for lag in pipelines[0].lag()] == [0], "both shares caught up: nothing behind"
    finally:
        store.close()


def _record_commands(recorder: Recorder) -> Callable[[Tx, list[Event]], None]:
    def apply(tx: Tx, commands: list[Event]) -> None:
        recorder.on_events(tx, commands, {})

    return apply


@pytest.mark.postgres
def test_a_read_holds_the_planner_to_the_log_order_for_itself_only(pg_cluster: PgCluster) -> None:
    """The read turns the bitmap scan, the sequential scan and the sort off for its own statement (a fast-growing log
    outruns its statistics) and leaves the rest of the stage's transaction planned as it was configured."""
    store = Store.open(pg_cluster.new_database())
    try:
        with store.transaction() as tx:
            tx.log.append_commands([(f"user{n}", "noop", n, {"n": f"c{n}"}) for n in range(50)], 0)
        with store.transaction() as tx:
            tx.conn.exec_driver_sql("SET LOCAL enable_sort = off")  # an operator's own choice, kept
            rows = tx.log.read((0, 0), tuple(range(PARTITIONS)), 20, every_partition=False)
            settings = {name: tx.conn.exec_driver_sql(f"SHOW {name}").scalar_one()
                        for name in ("enable_bitmapscan", "enable_seqscan", "enable_sort")}
        assert [r.event.properties["n"] for r in rows] == [f"c{n}" for n in range(20)]
        assert settings == {"enable_bitmapscan": "on", "enable_seqscan": "on", "enable_sort": "off"}
    finally:
        store.close()


def test_the_backlog_counts_each_partitions_rows_after_its_own_cursor(db_url: str) -> None:
    """The backlog of three stages: one caught up (but for a row appended since), one stopped part way, one that
    never ran (no cursors: everything is behind), each against the rows counted after each partition's cursor."""
    store = Store.open(db_url)
    try:
        with store.transaction() as tx:
            tx.log.append_commands([(f"user{n}", "noop", n, {"n": f"c{n}"}) for n in range(300)], 0)
        done, half = Recorder(), Recorder()
        Pipeline(store, [Stage("done", done, {"noop": _record_commands(done)})], SoleOwner()).drain()
        half_owner = SoleOwner()
        first = Pipeline(store, [Stage("half", half, {"noop": _record_commands(half)})], half_owner, batch_size=120)
        first.step()  # 120 rows of every partition's order applied; the rest behind
        with store.transaction() as tx:  # a later row of one partition only
            tx.log.append_commands([("user0", "noop", 1, {"n": "late"})], 0)
        with store.read() as tx:
            cursors = tx.log.cursors(["half"])["half"]
            rows = list(tx.log.read((0, 0), tuple(range(PARTITIONS)), 10_000, every_partition=True))
        behind_half = sum(1 for r in rows if r.position > cursors.get(r.partition, (0, 0)))
        with store.read() as tx:
            counted = tx.log.backlogs(["done", "half", "never"])
        assert len(half.seen) == 120 and behind_half == 301 - 120
        assert counted == {"done": 1, "half": behind_half, "never": 301}
    finally:
        store.close()


@pytest.mark.postgres
def test_a_price_drop_reaches_the_favoriters_of_a_worker_that_is_behind(pg_cluster: PgCluster, tmp_path: Path,
                                                                         clock: ManualClock) -> None:
    """Two workers share the partitions; the one that applies the price change is ahead of the other, which has
    not yet applied its users' favorites (stored before the price change). Every favoriter is still reached: each
    partition's owner finds its own favoriters when it reaches the fan-out in its partition of the log."""
    from growthengine.domain.partitions import partition_of

    url = pg_cluster.new_database()
    engines = [make_engine(url, clock, tmp_path / name) for name in ("a", "b")]
    now = [1_000.0]
    owners = [LeasedOwnership(e.store, lambda: now[0], worker_id=name) for e, name in zip(engines, "ab", strict=True)]
    try:
        for o in (*owners, *owners):
            o.refresh()
        for engine, owner in zip(engines, owners, strict=True):
            engine.use_ownership(owner)
        a_parts, b_parts = set(owners[0].partitions()), set(owners[1].partitions())
        seller = next(f"seller{n}" for n in range(1000) if partition_of(f"seller{n}") in a_parts)
        fans = [f"fan{n}" for n in range(60)]
        assert {partition_of(f) in b_parts for f in fans} == {True, False}, "fans on both workers"
        consent = {"push": True}
        calls: list[dict[str, object]] = [
            {"type": "track", "userId": seller, "event": "listing_created",
             "properties": {"listing_id": "L7", "title": "Fuji", "price": 1000, "category": "cameras"}}]
        calls += [{"type": "identify", "userId": f, "traits": {"push_token": f"t-{f}", "consent": consent}}
                  for f in fans]
        calls += [{"type": "track", "userId": f, "event": "favorite_added", "properties": {"listing_id": "L7"}}
                  for f in fans]
        calls.append({"type": "track", "userId": seller, "event": "listing_price_changed",
                      "properties": {"listing_id": "L7", "old_price": 1000, "new_price": 800}})
        assert engines[0].ingestion.ingest(calls).accepted == len(calls)

        engines[0].pipeline.drain()  # a is ahead: the price change applied before b has seen any favorite
        with engines[0].store.read() as tx:
            stored = {u for (u,) in tx.conn.exec_driver_sql("SELECT user_id FROM favorites").all()}
        assert stored == {f for f in fans if partition_of(f) in a_parts}, "b's favorites are not applied yet"
        engines[1].pipeline.drain()
        engines[0].pipeline.drain()
        with engines[0].store.read() as tx:
            enrolled = _enrolment_commands(tx)
            runs = [u for (u,) in tx.conn.exec_driver_sql(
                "SELECT user_id FROM flow_runs WHERE flow_key = 'price_drop'").all()]
        assert enrolled == len(fans), "each favoriter named once by an enrolment command, on either worker"
        assert sorted(runs) == sorted(fans)
    finally:
        for engine in engines:
            engine.close()
