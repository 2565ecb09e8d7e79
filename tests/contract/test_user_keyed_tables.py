"""Every hot table is keyed by user id first (issue 10), on both databases, and revision 0016 moves a database with
rows there and back without losing any."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

import growthengine.storage
from growthengine.storage import migrations
from growthengine.storage.database import open_engine
from growthengine.storage.schema import metadata
from growthengine.storage.user_keys import ID_INDEXES, KEYED_BY_PARTITION, NOT_USER_KEYED, ROW_ID_TABLES
from tests.pg_cluster import PgCluster

for _module in pkgutil.iter_modules(growthengine.storage.__path__):
    if _module.name != "migrations":  # every module that defines a table, so that the metadata is complete
        importlib.import_module(f"growthengine.storage.{_module.name}")

HOT = {"events", "profiles", "segment_state", "segment_members", "segment_transitions", "flow_runs",
       "flow_activities", "messages", "message_events", "user_models", "favorites", "kpi_messages", "kpi_credits",
       "consent_changes", "coupons"}
# PostgreSQL only, outside the metadata: the transaction id columns the cursors read below the horizon.
PG_ONLY_COLUMNS = {("events", "txid"), ("message_events", "txid")}
PG_ONLY_INDEXES = {"ix_events_txid", "ix_message_events_txid", *ID_INDEXES}


def _key(table: sa.Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def test_every_hot_table_is_keyed_by_user_id_first() -> None:
    tables = {t.name: t for t in metadata.sorted_tables}
    assert HOT <= set(tables), "the schema was read"
    unknown = (set(NOT_USER_KEYED) | set(KEYED_BY_PARTITION) | set(ROW_ID_TABLES)) - set(tables)
    assert not unknown, f"listed tables that do not exist: {sorted(unknown)}"
    assert not set(NOT_USER_KEYED) & (HOT | set(KEYED_BY_PARTITION))
    wrong = {}
    for name, table in tables.items():
        first = _key(table)[0]
        if name in KEYED_BY_PARTITION:
            ok = first == "partition"
        else:
            ok = first == "user_id" or name in NOT_USER_KEYED
        if not ok:
            wrong[name] = _key(table)
    assert not wrong, f"tables keyed by something else than the user, and not listed with a reason: {wrong}"
    assert all(_key(tables[name])[-1] == column for name, column in ROW_ID_TABLES.items())


def _schema(conn: sa.Connection) -> dict[str, Any]:
    inspector = sa.inspect(conn)
    return {name: {"key": inspector.get_pk_constraint(name)["constrained_columns"],
                   "indexes": {i["name"]: list(i["column_names"]) for i in inspector.get_indexes(name)}}
            for name in inspector.get_table_names()}


def test_the_migrated_schema_is_the_metadata(db_url: str) -> None:
    """Tables, columns and indexes as the metadata says (``compare_metadata``), and the primary keys too: on
    SQLite the row-id tables keep the id alone (their rowid)."""
    engine, dialect = open_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            schema = _schema(conn)
    finally:
        engine.dispose()
    extra = [d for d in diff if not (
        (d[0] == "remove_column" and (d[2], d[3].name) in PG_ONLY_COLUMNS and dialect == "postgresql")
        or (d[0] == "remove_index" and d[1].name in PG_ONLY_INDEXES and dialect == "postgresql"))]
    assert not extra, f"the migrations and the metadata differ: {extra}"
    for table in metadata.sorted_tables:
        expected = _key(table)
        if dialect == "sqlite" and table.name in ROW_ID_TABLES:
            expected = [ROW_ID_TABLES[table.name]]
        assert schema[table.name]["key"] == expected, table.name
    if dialect == "postgresql":
        for name, (table_name, column) in ID_INDEXES.items():
            assert schema[table_name]["indexes"][name] == [column]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database(migrated=False)


ROWS: dict[str, dict[str, Any]] = {
    "events": {"message_id": "m1", "type": "track", "name": "purchase", "user_id": "u1", "ts_us": 1,
               "received_us": 1, "payload": "{}"},
    "segment_members": {"segment_key": "s", "user_id": "u1", "entity": "", "since_us": 1, "data": "{}",
                        "reason": "{}"},
    "segment_transitions": {"segment_key": "s", "user_id": "u1", "entity": "", "kind": "enter", "at_us": 1,
                            "reason": "{}", "data": "{}"},
    "consent_changes": {"user_id": "u1", "channel": "email", "granted": True, "at_us": 1, "source": "api"},
    "flow_runs": {"flow_key": "f", "version": "v", "user_id": "u1", "entity": "", "status": "active", "cursor": "0",
                  "trigger_us": 1, "entered_us": 1, "updated_us": 1, "context": "{}"},
    "messages": {"id": "msg1", "user_id": "u1", "flow_key": "f", "step": "s", "channel": "push",
                 "kind": "marketing", "status": "sent", "priority": 50, "scheduled_us": 1, "updated_us": 1,
                 "body": "x", "data": "{}"},
    "message_events": {"user_id": "u1", "message_id": "msg1", "partition": 3, "flow_key": "f", "step": "s",
                       "channel": "push", "variant": "", "kind": "marketing", "status": "sent", "reason": "",
                       "scheduled_us": 1, "at_us": 1},
    "timers": {"kind": "k", "key": "t1", "due_us": 1, "payload": "{}", "attempts": 0, "partition": 3},
    "favorites": {"listing_id": "L1", "user_id": "u1", "added_us": 1},
    "flow_activities": {"run_id": 1, "step": "0", "user_id": "u1", "kind": "coupon", "request": "{}",
                        "status": "pending", "attempts": 0, "lease_s": 0.0, "created_us": 1},
    "kpi_messages": {"message_id": "msg1", "user_id": "u1", "day": "2026-01-05", "flow_key": "f", "step": "s",
                     "channel": "push", "variant": "", "kind": "marketing", "status": "sent", "reason": "",
                     "grp": "t", "converted": False, "unsubscribed": False},
    "coupons": {"code": "C1", "issue_key": "i1", "user_id": "u1", "type": "percent", "value": "10",
                "created_us": 1, "expires_us": 2},
}
KEYS_AT_0015 = {"events": ["id"], "segment_members": ["segment_key", "user_id", "entity"],
                "segment_transitions": ["id"], "consent_changes": ["id"], "flow_runs": ["id"], "messages": ["seq"],
                "message_events": ["id"], "timers": ["id"], "favorites": ["listing_id", "user_id"],
                "flow_activities": ["run_id", "step"], "kpi_messages": ["message_id"], "coupons": ["code"]}


def _contents(conn: sa.Connection) -> dict[str, list[tuple[Any, ...]]]:
    found = {}
    for name, row in ROWS.items():
        columns = sorted(row)
        found[name] = [tuple(r) for r in conn.execute(sa.text(f"SELECT {', '.join(columns)} FROM {name}"))]
    return found


def test_revision_0016_moves_a_database_with_rows_there_and_back(empty_db_url: str) -> None:
    engine, dialect = open_engine(empty_db_url)
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))

    def migrate(step: Any, target: str) -> dict[str, Any]:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            step(config, target)
        with engine.connect() as conn:
            return {"schema": _schema(conn), "rows": _contents(conn)}

    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0015")
            for name, row in ROWS.items():
                conn.execute(sa.table(name, *[sa.column(c) for c in row]).insert(), [row])
        with engine.connect() as conn:
            before = _contents(conn)
        assert all(len(rows) == 1 for rows in before.values())

        upgraded = migrate(command.upgrade, "0016")
        assert upgraded["rows"] == before
        for name in ROWS:
            table = metadata.tables[name]
            expected = _key(table) if dialect == "postgresql" or name not in ROW_ID_TABLES else KEYS_AT_0015[name]
            assert upgraded["schema"][name]["key"] == expected, name
        assert upgraded["schema"]["favorites"]["indexes"] == {"ix_favorites_listing": ["listing_id", "user_id"]}
        assert upgraded["schema"]["coupons"]["indexes"]["ux_coupons_code"] == ["code"]

        downgraded = migrate(command.downgrade, "0015")
        assert downgraded["rows"] == before
        assert {name: downgraded["schema"][name]["key"] for name in ROWS} == KEYS_AT_0015
        assert downgraded["schema"]["favorites"]["indexes"] == {"ix_favorites_user": ["user_id"]}
        assert "ix_segment_members_user" in downgraded["schema"]["segment_members"]["indexes"]
        assert "ux_coupons_code" not in downgraded["schema"]["coupons"]["indexes"]

        again = migrate(command.upgrade, "head")
        assert again["rows"] == before
        assert again["schema"]["segment_members"]["key"] == ["user_id", "segment_key", "entity"]
        # The ids go on from where they were, on both databases (the key changed; the sequence did not).
        with engine.begin() as conn:
            conn.execute(sa.table("events", *[sa.column(c) for c in ROWS["events"]]).insert(),
                         [{**ROWS["events"], "message_id": "m2", "user_id": "u2"}])
            ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM events ORDER BY id"))]
        assert len(ids) == 2 and ids[1] > ids[0]
    finally:
        engine.dispose()
