"""How far behind the log each pipeline stage is, in seconds: what ``/readyz`` and ``/metrics`` read.

A lag source is any callable answering ``{stage: seconds}``; the pipeline can hand in its own (for example
``lambda: {l.stage: l.seconds for l in pipeline.lag()}``). Without one, :func:`database_lag` reads the stage
cursors from the database when the ``stage_cursors`` table is there: a stage that has rows after its cursor is
as far behind as the time since its cursor last moved. Without that table everything happens on the ingest path
and nothing can lag: ``{"ingest": 0.0}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from growthengine.clock import system_seconds
from growthengine.storage.plain_reads import read
from growthengine.storage.unit_of_work import Store

LagSource = Callable[[], Mapping[str, float]]


def database_lag(store: Store, *, now_s: Callable[[], float] = system_seconds) -> LagSource:
    """A lag source that reads the ``stage_cursors`` table (system time: cursors record when they moved)."""

    def lag() -> dict[str, float]:
        try:
            rows = read(store, "SELECT stage, MIN(id_pos), MAX(updated_s) FROM stage_cursors GROUP BY stage")
        except Exception:  # no pipeline tables in this database: ingestion does all the work inline
            return {"ingest": 0.0}
        now = now_s()
        out: dict[str, float] = {}
        for stage, lowest, moved in rows:
            behind = read(store, "SELECT 1 FROM events WHERE id > ? LIMIT 1", [int(lowest)])
            out[str(stage)] = max(0.0, now - float(moved)) if behind else 0.0
        return out

    return lag
