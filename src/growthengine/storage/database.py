"""Opening a database: URL handling, the two adapters' engine settings, and migrations."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from growthengine.clock import system_seconds
from growthengine.private_files import private_dir, private_file

log = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgresql"]


class DatabaseURLError(ValueError):
    """The database URL names something the engine cannot open."""


def normalize_url(url: str) -> tuple[str, Dialect]:
    """Accept ``sqlite:///path`` and ``postgresql://...``; return the SQLAlchemy URL and the dialect."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DatabaseURLError(f"not a database URL: {url!r} ({exc})") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.render_as_string(hide_password=False), "sqlite"
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False), "postgresql"
    raise DatabaseURLError(f"unsupported database {backend!r}: use sqlite:///path or postgresql://...")


def create_sqlite_engine(url: str) -> sa.Engine:
    """The embedded default: a file in WAL mode, one writer at a time, BEGIN IMMEDIATE for every transaction."""
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        path = Path(parsed.database).expanduser()
        private_dir(path.parent)
        private_file(path)  # 0600; SQLite gives its WAL and shared-memory files the same mode
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite's own handling is lazy)
        cur = dbapi_conn.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "busy_timeout=30000",
            "cache_size=-262144",
            "temp_store=MEMORY",
            "mmap_size=1073741824",
            # Checkpoint the WAL into the database every 10,000 pages (40 MB) rather than SQLite's 1,000: an
            # ingest group of a few hundred events dirties over 1,000 index pages (random message and user ids), so
            # at 1,000 every commit also ran a checkpoint with its two fsyncs. API-only ingestion, 4 clients:
            # 6,700-9,400 -> 12,700-13,300 events/s (benchmarks/README.md, "Ingestion CPU per event, third pass").
            "wal_autocheckpoint=10000",
        ):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # A writer takes the write lock at once (no upgrade deadlocks); a reader (``Store.read``) takes none and
        # reads a snapshot beside the writer (WAL).
        if conn.get_execution_options().get("read_only"):
            conn.exec_driver_sql("BEGIN")
        else:
            begin_immediate(conn.connection.dbapi_connection)

    return engine


WRITE_LOCK_TIMEOUT_S = 30.0
WRITE_LOCK_POLL_S = 0.0005


def begin_immediate(dbapi_conn: Any, *, timeout_s: float = WRITE_LOCK_TIMEOUT_S) -> None:
    """``BEGIN IMMEDIATE``, waiting for the write lock by polling every half millisecond.

    SQLite's own busy handler sleeps longer and longer (up to 100 ms a try), so a writer that commits and begins
    again at once (a worker's batches) can keep another (ingestion) waiting for many of its transactions. Polling
    briefly takes the lock in the gap between two of them.
    """
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(WRITE_LOCK_POLL_S)
    finally:
        cur.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        cur.close()


_LOCK_CONFLICTS = ("40P01", "40001")  # deadlock_detected, serialization_failure


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether PostgreSQL undid a transaction for a deadlock or a serialization failure (worth storing again)."""
    driver_error = getattr(exc, "orig", exc)  # SQLAlchemy wraps the driver's error; ``driver_cursor`` does not
    return getattr(driver_error, "sqlstate", None) in _LOCK_CONFLICTS


IDLE_PING_S = 10.0
"""A pooled PostgreSQL connection idle longer than this is checked (``SELECT 1``) before it is handed out."""


def create_postgres_engine(url: str) -> sa.Engine:
    """Production: PostgreSQL through psycopg 3, a connection pool per process.

    A connection that sat in the pool for ``IDLE_PING_S`` is pinged before use and replaced if the server has
    gone (a restart, a failover, an idle timeout). SQLAlchemy's ``pool_pre_ping`` pinged before every
    transaction: a server round trip for each ingest group and stage batch (py-spy: 6 % of PostgreSQL
    ingestion), when a connection in steady use has just proved itself."""
    engine = sa.create_engine(url, pool_size=5, max_overflow=5)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # psycopg prepares a statement run often, and PostgreSQL may then keep one generic plan for it, made for the
        # table as it was: a profile lookup prepared while ``profiles`` was nearly empty kept scanning the whole
        # table once it held thousands of rows (until an ANALYZE), and held a worker back for seconds a batch.
        # Every execution planned for its own values instead (the statements are simple: planning is cheap).
        with dbapi_conn.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_conn.commit()

    @sa.event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["idle_since"] = system_seconds()

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        since = record.info.get("idle_since")
        if since is None or system_seconds() - since < IDLE_PING_S:
            return
        try:
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as exc:  # the pool drops this connection and hands out a fresh one
            log.warning("a pooled PostgreSQL connection was gone (%s); reconnecting", type(exc).__name__)
            raise sa.exc.DisconnectionError() from exc

    return engine


def open_engine(url: str) -> tuple[sa.Engine, Dialect]:
    sa_url, dialect = normalize_url(url)
    if dialect == "sqlite":
        return create_sqlite_engine(sa_url), dialect
    return create_postgres_engine(sa_url), dialect


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Several processes may start at once: one migrates, the others wait.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727001)")
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    log.info("database schema is at the newest revision")
