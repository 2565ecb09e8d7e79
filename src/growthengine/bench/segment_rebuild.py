"""``growth bench segments --rebuild``: a full rebuild of the five default segments, three ways, on the same rows.

* **Python**: ``segments.rebuild.rebuild`` (every user's events replayed through the evaluator), on SQLite (skipped
  with ``--no-python``, slow at full size: the SQL rebuilds' members are then checked against DuckDB's);
* **SQL**: ``segments.sql_rebuild.sql_rebuild`` (the log read once into a typed temporary table, every segment's
  aggregates in one pass per user, then one query per segment) on a copy of the same SQLite file, and on PostgreSQL
  when a URL is given (``--pg``; the database must hold no events yet: the SQLite file's rows are copied into it);
* **DuckDB**: the same five segments written by hand for DuckDB over typed columns (amount, province, listing ids
  taken out of the JSON when the rows are exported), in a subprocess (``bench.duckdb_segments``) so that its memory
  stays out of the engine's; its load of the exported file and its queries are timed apart.

The rows are generated straight into the ``events`` and ``profiles`` tables (no ingestion: this measures rebuilds):
``users`` users over the 90 days before the rebuild instant, some of whom went quiet 31 to 50 days ago, a skewed
activity so that some users view, search and buy a lot. Each rebuild starts from no stored members, so every member
is an entry. The members each way found are compared; a difference fails the benchmark. Time is measured with
``time.perf_counter`` around each part; nothing in the engine reads the wall clock.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.bench.ingest import Measurement
from growthengine.clock import ManualClock, to_us
from growthengine.domain.partitions import partition_of
from growthengine.segments.engine import SegmentEngine
from growthengine.storage.unit_of_work import Store

Stage = Callable[[str, int], Callable[[int], None]]
AS_OF = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
DAY_US = 86_400_000_000
SPAN_DAYS = 90
PROVINCES = ("กรุงเทพมหานคร", "เชียงใหม่", "ขอนแก่น", "ภูเก็ต", "ชลบุรี")
_MIX = (("item_viewed", 40), ("app_opened", 10), ("page", 8), ("location_searched", 10), ("add_to_cart", 9),
        ("remove_from_cart", 2), ("purchase", 6), ("item_sold", 5), ("favorite_added", 6), ("identify", 4))
_COLUMNS = "message_id, type, name, user_id, anonymous_id, ts_us, received_us, payload, extra, partition"
TARGET_REBUILD_S = 60.0
TARGET_DUCKDB_RATIO = 10.0


class BenchError(RuntimeError):
    """The benchmark cannot run (a missing dev dependency, a database that is not empty) or its answers differ."""


@dataclass(frozen=True)
class RebuildSize:
    users: int = 2_000
    events: int = 20_000
    seed: int = 7


@dataclass
class RebuildBench:
    size: RebuildSize
    python: Measurement | None
    """None when skipped (``--no-python``): the SQL rebuilds' members are then checked against DuckDB's."""
    sql_sqlite: Measurement
    sql_pg: Measurement | None
    duckdb_load_s: float
    duckdb_query_s: float
    export_s: float
    members: dict[str, int] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """SQL rebuild on SQLite over DuckDB's queries (the goal: within 10 x)."""
        return self.sql_sqlite.seconds / self.duckdb_query_s if self.duckdb_query_s else 0.0


def _rows(size: RebuildSize, as_of_us: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(size.seed)
    kinds, weights = [k for k, _ in _MIX], [w for _, w in _MIX]
    quiet = {u for u in range(size.users) if rng.random() < 0.3 and u % 5 != 2}
    for i in range(size.events):
        u = int(size.users * rng.random() ** 2.5)
        user = f"u{u:07d}"
        end = as_of_us - (rng.randint(31, 50) * DAY_US if u in quiet else rng.randrange(0, DAY_US))
        ts = end - int(rng.random() ** 1.5 * (SPAN_DAYS - 31) * DAY_US)
        kind = rng.choices(kinds, weights)[0]
        if u % 5 == 2 and kind in ("purchase", "favorite_added", "app_opened"):
            kind = "item_viewed"  # one user in five only looks, lately (window shoppers)
            ts = as_of_us - rng.randrange(0, 7 * DAY_US)
        listing = f"L{rng.randrange(1, 5_000):05d}"
        props: dict[str, Any] = {}
        typ, name = "track", kind
        if kind == "item_viewed":
            props = {"listing_id": listing, "price": rng.choice((99, 290, 1500)), "province": rng.choice(PROVINCES)}
        elif kind == "location_searched":
            props = {"province": rng.choice(PROVINCES[: 1 + u % len(PROVINCES)])}
        elif kind in ("add_to_cart", "remove_from_cart", "favorite_added"):
            props = {"listing_id": listing}
        elif kind == "purchase":
            props = {"order_id": f"O{i}", "amount": float(rng.choice((290, 990, 2900, 4500))),
                     "listing_ids": [listing] + ([f"L{rng.randrange(1, 5_000):05d}"] if rng.random() < 0.3 else [])}
        elif kind == "item_sold":
            props = {"listing_id": listing, "amount": rng.choice((150, 450))}
        elif kind == "page":
            typ, name = "page", "page"
        elif kind == "identify":
            typ, name = "identify", "identify"
            props = {"timezone": "Asia/Bangkok"}
        yield (f"b{i}", typ, name, user, None, ts, ts, orjson.dumps(props).decode(), None, partition_of(user))


def _insert(store: Store, size: RebuildSize, as_of_us: int, progress: Callable[[int], None]) -> None:
    mark = "%s" if store.dialect == "postgresql" else "?"
    insert = f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join([mark] * 10)})"  # noqa: S608 (markers only)
    profile = ("INSERT INTO profiles (user_id, anonymous, traits, trait_times, first_seen_us, last_active_us, "  # noqa: S608
               f"updated_us) VALUES ({', '.join([mark] * 7)})")
    with store.transaction() as tx:
        if tx.events.count():
            raise BenchError("the database already holds events: give an empty one")
        batch: list[tuple[Any, ...]] = []
        for row in _rows(size, as_of_us):
            batch.append(row)
            if len(batch) == 10_000:
                tx.conn.exec_driver_sql(insert, batch)
                progress(len(batch))
                batch = []
        if batch:
            tx.conn.exec_driver_sql(insert, batch)
            progress(len(batch))
        users = [r[0] for r in tx.conn.exec_driver_sql("SELECT DISTINCT user_id FROM events")]
        traits = orjson.dumps({"timezone": "Asia/Bangkok"}).decode()
        tx.conn.exec_driver_sql(profile, [(u, False, traits if i % 2 else "{}", "{}", 0, None, 0)
                                          for i, u in enumerate(users)])


def _copy_to_pg(source: Store, pg: Store, progress: Callable[[int], None]) -> None:
    """The SQLite file's events and profiles into an empty PostgreSQL database by ``COPY`` (the same rows, in the
    same order, without generating them again)."""
    profile_columns = "user_id, anonymous, traits, trait_times, first_seen_us, last_active_us, updated_us"
    with source.read() as src, pg.transaction() as tx:
        if tx.events.count():
            raise BenchError("the database already holds events: give an empty one")
        cursor = tx.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        events = src.conn.exec_driver_sql(f"SELECT {_COLUMNS} FROM events ORDER BY id")  # noqa: S608
        n = 0
        with cursor.copy(f"COPY events ({_COLUMNS}) FROM STDIN") as copy:
            for n, row in enumerate(events, 1):
                copy.write_row(row)
                if n % 100_000 == 0:
                    progress(100_000)
        progress(n % 100_000)
        profiles = src.conn.exec_driver_sql(f"SELECT {profile_columns} FROM profiles")  # noqa: S608
        with cursor.copy(f"COPY profiles ({profile_columns}) FROM STDIN") as copy:
            for row in profiles:
                copy.write_row((row[0], bool(row[1]), *row[2:]))  # SQLite's 0/1 as PostgreSQL's boolean
    # As a log that has lived is: vacuumed and analyzed (else autovacuum does it during the timed rebuild).
    with pg.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE events")


def _segment_engine() -> SegmentEngine:
    from growthengine.config.loader import load_config

    return SegmentEngine(load_config().segments, ManualClock(AS_OF), "Asia/Bangkok")


def _members(store: Store) -> dict[str, int]:
    with store.read() as tx:
        rows = tx.conn.exec_driver_sql("SELECT segment_key, COUNT(*) FROM segment_members GROUP BY segment_key")
        return {k: int(n) for k, n in rows}


def _timed(name: str, store: Store, run: Callable[[SegmentEngine, Any], Any], events: int) -> Measurement:
    engine = _segment_engine()
    cpu0, start = time.process_time(), time.perf_counter()
    with store.transaction() as tx:
        result = run(engine, tx)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    details: dict[str, Any] = {"entered": result.entered, "members": _members(store)}
    phases = getattr(result, "phases", None)  # the SQL rebuild's, timed part by part
    if phases is not None:
        details["phases"] = [(p.name, p.seconds, p.cpu_s, p.server_cpu_s) for p in phases]
        server = [p.server_cpu_s for p in phases if p.server_cpu_s is not None]
        if server:
            details["server_cpu_s"] = sum(server)
    return Measurement(name, events, seconds, cpu, details)


def _python(engine: SegmentEngine, tx: Any) -> Any:
    from growthengine.segments.rebuild import rebuild

    return rebuild(engine, tx)


def backend_cpu(tx: Any) -> Callable[[], float] | None:
    """On PostgreSQL, a reader of the CPU seconds the server spent for this transaction: its backend's, and its
    parallel workers' (children of the postmaster, counted in the postmaster's children's times once they end with
    their query; so are those of any other child that ends meanwhile, an autovacuum worker's too). From ``/proc``:
    the server must run on this machine, as the benchmark's throw-away one does; None elsewhere or unreadable."""
    if tx.dialect != "postgresql":
        return None
    pid = tx.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    tick = os.sysconf("SC_CLK_TCK")

    def fields(of: int) -> list[str]:
        return Path(f"/proc/{of}/stat").read_text().rsplit(")", 1)[1].split()  # from field 3 (the state) on

    try:
        postmaster = int(fields(int(pid))[1])
    except (OSError, ValueError, IndexError):
        return None

    def read() -> float:
        own, children = fields(int(pid)), fields(postmaster)  # utime, stime; the ended children's cutime, cstime
        return (int(own[11]) + int(own[12]) + int(children[13]) + int(children[14])) / tick

    return read


def _sql(engine: SegmentEngine, tx: Any) -> Any:
    from growthengine.segments.sql_phases import Phases
    from growthengine.segments.sql_rebuild import sql_rebuild

    result = sql_rebuild(engine, tx, phases=Phases(server_cpu=backend_cpu(tx)))
    if result.fell_back or result.disagreements:
        raise BenchError(f"SQL rebuild fell back for {result.fell_back}, {result.disagreements} disagreements")
    return result


def export_typed(store: Store, path: Path) -> None:
    """The events as typed columns for DuckDB: id, user, type, name, ts, amount, province, listing ids (``|``)."""
    with store.read() as tx, path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "user_id", "type", "name", "ts_us", "amount", "province", "listings"])
        rows = tx.conn.execute(sa.text("SELECT id, user_id, type, name, ts_us, payload FROM events "
                                       "WHERE type <> 'command'").execution_options(yield_per=20_000))
        for id_, user, typ, name, ts, payload in rows:
            p = orjson.loads(payload)
            amount = p.get("amount")
            listings = p.get("listing_ids") if isinstance(p.get("listing_ids"), list) else [p.get("listing_id")]
            writer.writerow([id_, user, typ, name, ts, amount if isinstance(amount, (int, float)) else "",
                             p.get("province") or "", "|".join(str(x) for x in listings if x is not None)])


def run_duckdb(csv_path: Path, as_of_us: int) -> dict[str, Any]:
    """DuckDB in a subprocess; says clearly when it is not installed (a dev dependency)."""
    try:
        import duckdb  # noqa: F401
    except ImportError:
        raise BenchError("the DuckDB comparison needs the dev extras: pip install -e '.[dev]' (duckdb)") from None
    from growthengine.segments.sql_compile import SAME_INSTANT_BY_ARRIVAL

    proc = subprocess.run(  # noqa: S603 (our own module, with our own arguments)
        [sys.executable, "-m", "growthengine.bench.duckdb_segments", str(csv_path), str(as_of_us),
         "1" if SAME_INSTANT_BY_ARRIVAL else "0"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"DuckDB failed: {proc.stderr.strip()[-500:]}")
    answer: dict[str, Any] = json.loads(proc.stdout)
    return answer


def run_rebuild_bench(size: RebuildSize, db_dir: Path, stage: Stage, pg_url: str | None = None, *,
                      python: bool = True) -> RebuildBench:
    """The three rebuilds on the same rows; ``python=False`` skips the Python rebuild (slow at full size)."""
    db_dir.mkdir(parents=True, exist_ok=True)
    as_of_us = to_us(AS_OF)
    paths = [db_dir / "rebuild-python.db", db_dir / "rebuild-sql.db", db_dir / "rebuild-events.csv"]
    for path in paths:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    python_db, sql_db, csv_path = paths
    store = Store.open(f"sqlite:///{sql_db}")
    try:
        _insert(store, size, as_of_us, stage("generate", size.events))
    finally:
        store.close()
    py = None
    if python:
        shutil.copyfile(sql_db, python_db)
        store = Store.open(f"sqlite:///{python_db}")
        try:
            done = stage("python rebuild", 1)
            py = _timed("Python rebuild (SQLite)", store, _python, size.events)
            done(1)
        finally:
            store.close()
    store = Store.open(f"sqlite:///{sql_db}")
    try:
        done = stage("sql rebuild", 1)
        sql = _timed("SQL rebuild (SQLite)", store, _sql, size.events)
        done(1)
        start = time.perf_counter()
        export_typed(store, csv_path)
        export_s = time.perf_counter() - start
        sql_pg = None
        if pg_url is not None:
            pg = Store.open(pg_url)
            try:
                _copy_to_pg(store, pg, stage("load PostgreSQL", size.events))
                sql_pg = _timed("SQL rebuild (PostgreSQL)", pg, _sql, size.events)
            finally:
                pg.close()
    finally:
        store.close()
    done = stage("duckdb", 1)
    duck = run_duckdb(csv_path, as_of_us)
    done(1)
    expected, by = (py.details["members"], "the Python rebuild") if py is not None else (duck["members"], "DuckDB")
    for m in (sql, sql_pg):
        if m is not None and m.details["members"] != expected:
            raise BenchError(f"{m.name} found {m.details['members']}, {by} {expected}")
    if duck["members"] != expected:
        raise BenchError(f"DuckDB found {duck['members']}, {by} {expected}")
    return RebuildBench(size, py, sql, sql_pg, duck["load_s"], duck["query_s"], export_s, expected)
