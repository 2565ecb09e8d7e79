"""The storage port: a unit of work over one transaction, with a repository per concern.

Both adapters (SQLite and PostgreSQL) share these repositories; what differs between them (engine set-up,
locking, upserts) lives in ``database.py`` and ``dialects.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.storage.activity_store import ActivityStore
from growthengine.storage.consent_store import ConsentStore
from growthengine.storage.coupon_store import CouponStore
from growthengine.storage.database import Dialect, migrate, open_engine
from growthengine.storage.dialects import insert_for
from growthengine.storage.erasure_store import ErasureStore
from growthengine.storage.event_log import EventLog
from growthengine.storage.kpi_reads import KpiReads
from growthengine.storage.lease_store import LeaseStore
from growthengine.storage.listing_store import ListingStore
from growthengine.storage.message_store import MessageStore
from growthengine.storage.pipeline_schema import stage_cursors  # noqa: F401  (the pipeline's tables join the metadata)
from growthengine.storage.profile_store import ProfileStore
from growthengine.storage.run_store import RunStore
from growthengine.storage.schema import engine_state
from growthengine.storage.segment_store import SegmentStore
from growthengine.storage.stage_log import StageLog
from growthengine.storage.timer_store import TimerStore
from growthengine.storage.user_model_store import UserModelStore


class StateStore:
    """Small named documents the engine keeps between restarts."""

    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def get(self, key: str) -> Any | None:
        value = self._conn.execute(sa.select(engine_state.c.value).where(engine_state.c.key == key)).scalar()
        return orjson.loads(value) if value is not None else None

    def prefixed(self, prefix: str) -> dict[str, Any]:
        rows = self._conn.execute(sa.select(engine_state.c.key, engine_state.c.value)
                                  .where(engine_state.c.key.startswith(prefix, autoescape=True)))
        return {key: orjson.loads(value) for key, value in rows}

    def put(self, key: str, value: Any) -> None:
        stmt = insert_for(self._dialect, engine_state)
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"value": stmt.excluded.value})
        self._conn.execute(stmt, {"key": key, "value": orjson.dumps(value).decode()})


class Tx:
    """One open transaction and the repositories that work inside it."""

    def __init__(self, conn: sa.Connection, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect
        self.events = EventLog(conn, dialect)
        self.log = StageLog(conn, dialect)
        self.leases = LeaseStore(conn, dialect)
        self.profiles = ProfileStore(conn, dialect)
        self.timers = TimerStore(conn, dialect)
        self.state = StateStore(conn, dialect)
        self.coupons = CouponStore(conn, dialect)
        self.consent = ConsentStore(conn, dialect)
        self.user_models = UserModelStore(conn, dialect)
        self.segments = SegmentStore(conn, dialect)
        self.runs = RunStore(conn, dialect)
        self.activities = ActivityStore(conn, dialect)
        self.messages = MessageStore(conn, dialect)
        self.listings = ListingStore(conn, dialect)
        self.erasure = ErasureStore(conn, dialect)
        self.kpis = KpiReads(conn, dialect)  # the KPI rollups (computed by analytics/rollups.py)


class Store:
    """A database the engine runs on."""

    def __init__(self, engine: sa.Engine, dialect: Dialect) -> None:
        self.engine = engine
        self.dialect = dialect

    @classmethod
    def open(cls, url: str, *, migrate_schema: bool = True) -> Store:
        engine, dialect = open_engine(url)
        store = cls(engine, dialect)
        if migrate_schema:
            migrate(engine)
        return store

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """Everything inside commits together or not at all."""
        with self.engine.begin() as conn:
            yield Tx(conn, self.dialect)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read-only view: on SQLite it takes no write lock, so reads neither wait for the ingest writer and the
        worker nor hold them up (what it writes, if anything, fails)."""
        with self.engine.connect().execution_options(read_only=True) as conn, conn.begin():
            yield Tx(conn, self.dialect)

    def close(self) -> None:
        self.engine.dispose()
