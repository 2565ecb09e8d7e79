"""Keeps SQLite's write-ahead log short while ingestion and a worker write the same file side by side.

SQLite starts its log again from the beginning only when a writer begins with every frame already copied into the
database and no reader on the log. Ingestion and the worker take turns with the write lock, and the worker reads
each batch in a snapshot, so that moment rarely comes: in a burst of 60,000 events the log held 30,000-150,000
frames (120-600 MB) for seconds at a time. Then every commit, ingestion's too, runs a checkpoint with its fsyncs
(the log is over ``wal_autocheckpoint``), and every page a reader or a writer looks up is searched in a longer log
index.

The worker calls :meth:`WalKeeper.after_batch` after each batch, between its transactions: at most every
``every_s`` it copies what it can into the database (a passive checkpoint: it waits for nobody) and, once the log
holds ``restart_frames`` or more, asks SQLite to start it again (``wal_checkpoint(RESTART)``), waiting at most
``RESTART_WAIT_MS`` for the readers of the moment to finish. Writers wait meanwhile, so that wait is kept short, and
a restart that could not finish in it (a long reader: an export, a large report) is tried again only after a
growing pause (up to ``MAX_BACKOFF_S``), so that a reader of several seconds does not stall ingestion again and
again. Measured with ``growth bench pipeline``: benchmarks/README.md, "Pipeline", sixth pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from growthengine.storage.database import WRITE_LOCK_TIMEOUT_S
from growthengine.storage.unit_of_work import Store

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.2
RESTART_FRAMES = 20_000
"""About 80 MB of 4 KB pages: twice ``wal_autocheckpoint`` (``storage/database.py``)."""
RESTART_WAIT_MS = 100
MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class Settled:
    frames: int
    """Frames in the log before the checkpoint."""
    copied: int
    """Of those, copied into the database."""
    restarted: bool
    """The log starts again at its next write."""


class WalKeeper:
    def __init__(self, store: Store, *, every_s: float = CHECK_EVERY_S, restart_frames: int = RESTART_FRAMES,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.every_s = every_s
        self.restart_frames = restart_frames
        self._monotonic = monotonic
        self._last = float("-inf")
        self._retry_at = float("-inf")
        self._backoff_s = 0.0
        self.restarts = 0
        self.attempts = 0

    @staticmethod
    def applies_to(store: Store) -> bool:
        """A SQLite file (an in-memory database has no log)."""
        database = store.engine.url.database or ""
        return store.dialect == "sqlite" and database not in ("", ":memory:") and "mode=memory" not in database

    def after_batch(self) -> None:
        now = self._monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        self.settle()

    def settle(self) -> Settled:
        """A passive checkpoint, and a restart of the log once it is long."""
        with self.store.engine.connect() as conn:
            cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                _busy, frames, copied = cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if frames < self.restart_frames or self._monotonic() < self._retry_at:
                    return Settled(frames, copied, restarted=False)
                self.attempts += 1
                cur.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
                try:
                    busy, _frames, copied = cur.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                finally:
                    cur.execute(f"PRAGMA busy_timeout={int(WRITE_LOCK_TIMEOUT_S * 1000)}")
            finally:
                cur.close()
        restarted = not busy
        if restarted:
            self.restarts += 1
            self._backoff_s = 0.0
            log.debug("write-ahead log of %d frames copied into the database and started again", frames)
        else:
            self._backoff_s = min(MAX_BACKOFF_S, max(2 * self._backoff_s, self.every_s))
            self._retry_at = self._monotonic() + self._backoff_s
            log.debug("write-ahead log of %d frames: a reader kept it from starting again; next try in %.1f s",
                      frames, self._backoff_s)
        return Settled(frames, copied, restarted)
