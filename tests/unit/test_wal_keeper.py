"""The worker keeps SQLite's write-ahead log short (``storage/wal_keeper.py``): a long log is copied into the database
and started again, a reader of the moment is waited for only briefly, and the check runs at most every so often."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from growthengine.clock import RealClock
from growthengine.engine import Engine
from growthengine.settings import Settings
from growthengine.storage.unit_of_work import Store
from growthengine.storage.wal_keeper import WalKeeper

RESTART_FRAMES = 200


def _writes(path: str, commits: int) -> None:
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS scratch (id INTEGER PRIMARY KEY, body BLOB)")
        for _ in range(commits):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO scratch (body) VALUES (?)", [(bytes(3000),) for _ in range(20)])
            conn.execute("COMMIT")
    conn.close()


def _log_frames(path: str) -> int:
    with sqlite3.connect(path, isolation_level=None) as conn:
        frames = int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    conn.close()
    return frames


@dataclass
class Log:
    path: str
    keeper: WalKeeper
    now: list[float]

    def reader(self) -> sqlite3.Connection:
        """A connection holding a snapshot, as a worker's batch read holds one."""
        reader = sqlite3.connect(self.path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM events").fetchone()
        return reader


@pytest.fixture
def wal(sqlite_url: str) -> Iterator[Log]:
    store = Store.open(sqlite_url)
    path = store.engine.url.database
    assert path is not None and WalKeeper.applies_to(store)
    now = [100.0]
    yield Log(path, WalKeeper(store, every_s=0.2, restart_frames=RESTART_FRAMES, monotonic=lambda: now[0]), now)
    store.close()


def test_a_long_log_is_started_again_once_its_readers_are_gone(wal: Log) -> None:
    reader = wal.reader()
    _writes(wal.path, 30)
    held = wal.keeper.settle()
    assert held.frames >= RESTART_FRAMES
    assert not held.restarted, "a reader still on the log: waited for briefly, not started again"
    reader.execute("COMMIT")
    reader.close()
    wal.now[0] += 0.3  # past the pause after a try that could not finish
    settled = wal.keeper.settle()
    assert settled.restarted and settled.copied == settled.frames
    assert wal.keeper.restarts == 1
    _writes(wal.path, 1)
    assert _log_frames(wal.path) < settled.frames / 10, "the next commit wrote at the log's start"


def test_the_log_is_looked_at_most_every_so_often(wal: Log) -> None:
    _writes(wal.path, 30)
    wal.keeper.after_batch()
    assert wal.keeper.restarts == 1
    _writes(wal.path, 30)
    wal.now[0] += 0.1
    wal.keeper.after_batch()
    assert wal.keeper.restarts == 1, "too soon: not looked at"
    wal.now[0] += 0.15
    wal.keeper.after_batch()
    assert wal.keeper.restarts == 2


def test_a_long_reader_is_not_waited_for_again_and_again(wal: Log) -> None:
    """A restart a reader kept from finishing is tried again only after a pause that grows (0.2, 0.4, 0.8 s ...):
    each try holds writers up for its wait."""
    reader = wal.reader()
    _writes(wal.path, 30)
    tried = []
    for _ in range(12):  # 0.25 s apart: 3 s in all
        wal.keeper.after_batch()
        tried.append(wal.keeper.attempts)
        wal.now[0] += 0.25
    assert wal.keeper.restarts == 0
    assert tried == [1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4]
    reader.execute("COMMIT")
    reader.close()
    wal.now[0] += 1.6
    wal.keeper.after_batch()
    assert wal.keeper.restarts == 1, "the reader gone: started again at the next try"


def _keeps(engine: Engine) -> bool:
    return any(isinstance(getattr(hook, "__self__", None), WalKeeper) for hook in engine.pipeline.after_commit)


def test_the_worker_on_a_sqlite_file_keeps_the_log_and_the_manual_clock_does_not(engine: Engine, sqlite_url: str,
                                                                                  tmp_path: Path) -> None:
    from growthengine.bootstrap import build_engine

    assert not _keeps(engine), "the manual clock: one process, nothing beside it"
    settings = Settings(db_url=sqlite_url, data_dir=tmp_path / "real", clock="real")
    real = build_engine(settings, clock=RealClock())
    try:
        assert _keeps(real)
    finally:
        real.close()
