"""``growth bench gate``: send decisions per second for queued marketing messages, on the embedded default.

``messages`` users are stored as profiles (varied consent, timezones, addresses; a tenth already got a push today
and an email this week, so the caps have history to count), then one marketing message per user (push, email,
SMS or in-app) is queued. Two measurements:

* **decisions**: the one pure send decision, ``gate.batch_decision.decide_many``, over the queue in batches of
  ``batch``, on the history prefetched for each batch (``gate.history_loader.load_history``, inside its own
  transaction: the cap lock and one query per frequency cap and batch, the channel scores), with the dispatcher's
  policy (channel switch on); the prefetch is timed apart, building the messages is not timed;
* **dispatcher flush**: ``Dispatcher.flush`` of ``flush_messages`` fresh messages in the same batches: the router
  (channel scores), the gate, the send ledger, the outbox and the sent hooks: what it costs to get a decided
  message written and delivered to the local outbox (target: 20,000 messages/s). Its CPU seconds
  (``time.process_time``) are printed beside the wall figure: on a machine shared with other work the wall time
  also holds the time spent waiting for a core (the run queue), which the CPU seconds do not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from growthengine.bench.ingest import Advance
from growthengine.bench.segments import open_bench_engine
from growthengine.bench.workload import BENCH_START
from growthengine.clock import to_us
from growthengine.domain.messages import Message, message_id
from growthengine.domain.profiles import Profile
from growthengine.flows.dispatch import Outgoing
from growthengine.gate.batch_decision import decide_many
from growthengine.gate.history import Candidate
from growthengine.gate.history_loader import load_history

Stage = Callable[[str, int], Advance]
Item = tuple[Message, dict[str, Any], float]

TARGET_DECISION_RATE = 100_000.0
TARGET_FLUSH_RATE = 20_000.0
TARGET_MESSAGES = 1_000_000
ZONES = ("Asia/Bangkok", "Asia/Bangkok", "Asia/Bangkok", "Asia/Tokyo", "Europe/London", "America/New_York")
CHANNELS = ("push", "push", "email", "email", "sms", "in_app")


@dataclass(frozen=True)
class GateSize:
    messages: int = 200_000
    flush_messages: int = 50_000
    batch: int = 2_000


@dataclass
class GateBench:
    size: GateSize
    decisions: int
    seconds: float
    cpu_s: float
    actions: dict[str, int] = field(default_factory=dict)
    flushed: int = 0
    flush_seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    prefetch_seconds: float = 0.0
    flush_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.decisions / self.seconds if self.seconds else 0.0

    @property
    def flush_rate(self) -> float:
        return self.flushed / self.flush_seconds if self.flush_seconds else 0.0


def user_traits(i: int) -> dict[str, Any]:
    """Varied but deterministic: consent per channel, a timezone, addresses some users lack."""
    traits: dict[str, Any] = {
        "timezone": ZONES[i % len(ZONES)], "language": "th" if i % 5 else "en",
        "consent": {"push": i % 10 < 7, "email": i % 2 == 0, "sms": i % 5 == 0, "in_app": True},
        "email": f"g{i}@example.co.th",
    }
    if i % 4:
        traits["push_token"] = f"fcm:{i:x}"
    if i % 3 == 0:
        traits["phone"] = f"+668{10_000_000 + i}"
    return traits


def _message(i: int, tag: str, now_us: int) -> Message:
    user = f"g{i:07d}"
    channel = CHANNELS[(i * 7) % len(CHANNELS)]
    return Message(id=message_id("bench_gate", user, tag, i), user_id=user, flow="bench_gate", step=tag,
                   channel=channel, kind="marketing", status="scheduled", scheduled_us=now_us, updated_us=now_us,
                   body="ลดราคาแล้ว! 🔥", priority=(40, 60, 80)[i % 3], expires_us=now_us + 86_400_000_000,
                   title="Price drop", subject="ของที่คุณชอบลดราคา", data={"template": "bench"})


def _batches(count: int, batch: int, tag: str, now_us: int) -> Iterator[list[Item]]:
    """The queue, ``batch`` messages at a time (built outside the timing)."""
    for start in range(0, count, batch):
        yield [(_message(i, tag, now_us), user_traits(i), 0.0) for i in range(start, min(count, start + batch))]


def run_gate_bench(size: GateSize, db_dir: Path, stage: Stage) -> GateBench:
    db_dir.mkdir(parents=True, exist_ok=True)
    db_file = db_dir / "gate.db"
    for suffix in ("", "-wal", "-shm", "-journal"):
        (db_dir / f"gate.db{suffix}").unlink(missing_ok=True)
    engine = open_bench_engine(db_file, BENCH_START)
    now_us = to_us(BENCH_START)
    dispatcher = engine.flows.dispatcher
    policy = dispatcher.policy
    try:
        users = max(size.messages, size.flush_messages)
        progress = stage("users", users)
        for start in range(0, users, 5000):
            end = min(users, start + 5000)
            profiles = [Profile(user_id=f"g{i:07d}", anonymous=False, traits=user_traits(i),
                                first_seen_us=now_us - 86_400_000_000, updated_us=now_us) for i in range(start, end)]
            sent = [_message(i, "earlier", now_us - 3_600_000_000) for i in range(start, end) if i % 10 == 0]
            for message in sent:
                message.status, message.sent_us = "sent", message.updated_us
            with engine.store.transaction() as tx:
                tx.profiles.save_many(profiles)
                tx.messages.add(sent)
            progress(end - start)

        progress = stage("decide_many", size.messages)
        decisions = 0
        seconds = cpu = prefetch_s = 0.0
        actions: dict[str, int] = {}
        for items in _batches(size.messages, size.batch, "queued", now_us):
            candidates = [Candidate(m, t, h) for m, t, h in items]
            start_s = time.perf_counter()
            with engine.store.transaction() as tx:
                history = load_history(tx, candidates, policy, now_us, models=dispatcher.optimizer)
            prefetch_s += time.perf_counter() - start_s
            cpu0, start_s = time.process_time(), time.perf_counter()
            decided = decide_many(candidates, history, policy)
            seconds += time.perf_counter() - start_s
            cpu += time.process_time() - cpu0
            decisions += len(decided)
            for d in decided:
                key = d.action if d.reason is None else f"{d.action} ({d.reason})"
                actions[key] = actions.get(key, 0) + 1
            progress(len(items))

        progress = stage("flush", size.flush_messages)
        flush_s = flush_cpu = 0.0
        statuses: dict[str, int] = {}
        for items in _batches(size.flush_messages, size.batch, "flushed", now_us):
            cpu0, start_s = time.process_time(), time.perf_counter()
            out = Outgoing()
            for message, traits, holdout in items:
                out.add(message, traits, holdout)
            with engine.store.transaction() as tx:
                dispatcher.flush(tx, out, now_us)
            flush_s += time.perf_counter() - start_s
            flush_cpu += time.process_time() - cpu0
            for message, _, _ in items:
                statuses[message.status] = statuses.get(message.status, 0) + 1
            progress(len(items))
    finally:
        engine.close()
    return GateBench(size=size, decisions=decisions, seconds=seconds, cpu_s=cpu, actions=actions,
                     flushed=size.flush_messages, flush_seconds=flush_s, statuses=statuses,
                     prefetch_seconds=prefetch_s, flush_cpu_s=flush_cpu)
