"""The pipeline sizes a batch for a time at the recent cost of a row: 0.2 s where ingestion waits for the write lock
meanwhile (the real clock), 1 s under the manual clock, where one process does everything and no writer waits."""

from __future__ import annotations

from pathlib import Path

from growthengine.bootstrap import build_engine
from growthengine.clock import RealClock
from growthengine.engine import Engine
from growthengine.pipeline.ownership import SoleOwner
from growthengine.pipeline.runner import BATCH_SIZE, BATCH_TIME_S, MANUAL_BATCH_TIME_S, MIN_BATCH, Pipeline
from growthengine.settings import Settings
from growthengine.storage.unit_of_work import Store


def test_a_batch_holds_what_fits_in_its_time_within_the_bounds(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    try:
        real = Pipeline(store, [], SoleOwner())
        manual = Pipeline(store, [], SoleOwner(), batch_time_s=MANUAL_BATCH_TIME_S)
        assert real._next_size() == manual._next_size() == BATCH_SIZE  # no cost known yet
        for pipeline in (real, manual):
            pipeline._row_cost_s = 0.001  # a page of enrolments: 1 ms a row
        assert (real._next_size(), manual._next_size()) == (200, 1000)
        for pipeline in (real, manual):
            pipeline._row_cost_s = 0.1
        assert real._next_size() == manual._next_size() == MIN_BATCH
        for pipeline in (real, manual):
            pipeline._row_cost_s = 0.000_01
        assert real._next_size() == manual._next_size() == BATCH_SIZE
    finally:
        store.close()


def test_the_manual_clock_sizes_batches_for_longer(engine: Engine, sqlite_url: str, tmp_path: Path) -> None:
    assert engine.pipeline.batch_time_s == MANUAL_BATCH_TIME_S
    real = build_engine(Settings(db_url=sqlite_url, data_dir=tmp_path / "real", clock="real"), clock=RealClock())
    try:
        assert real.pipeline.batch_time_s == BATCH_TIME_S
    finally:
        real.close()
