"""PostgreSQL connections and locks: a pooled connection idle past ``IDLE_PING_S`` is pinged before it is handed
out and, when the server has dropped it, replaced without the caller seeing an error (one in steady use is not
pinged); ingestion's claims take at most one lock a partition."""

from __future__ import annotations

import pytest

from growthengine.domain.partitions import PARTITIONS
from growthengine.storage import database
from growthengine.storage.unit_of_work import Store
from tests.pg_cluster import PgCluster

pytestmark = pytest.mark.postgres


def _backend_pid(store: Store) -> int:
    with store.read() as tx:
        return int(tx.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def test_an_idle_connection_the_server_dropped_is_replaced(pg_cluster: PgCluster,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg_cluster.new_database()
    store = Store.open(url)
    try:
        first = _backend_pid(store)
        with Store.open(url, migrate_schema=False).engine.connect() as other:
            assert other.exec_driver_sql("SELECT pg_terminate_backend(%s)", (first,)).scalar_one()
        monkeypatch.setattr(database, "IDLE_PING_S", 0.0)
        second = _backend_pid(store)  # no error: the dropped connection was found and replaced
        assert second != first
    finally:
        store.close()


def test_a_batch_of_thousands_of_users_claims_at_most_one_lock_a_partition(pg_cluster: PgCluster) -> None:
    """Ingestion's claims stay within PostgreSQL's shared lock table (64 locks a connection by default) however
    many users a batch has."""
    store = Store.open(pg_cluster.new_database())
    try:
        with store.transaction() as tx:
            tx.profiles.claim_keys([f"user-{n}" for n in range(5_000)] + [f"anon:{n}" for n in range(1_000)])
            held = tx.conn.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                           "AND pid = pg_backend_pid()").scalar_one()
        assert 0 < held <= PARTITIONS
    finally:
        store.close()


def test_statements_run_often_are_planned_for_their_own_values(pg_cluster: PgCluster) -> None:
    """psycopg prepares a statement after a few runs; PostgreSQL would then settle on one generic plan, made for the
    tables as they were then (a profile lookup prepared on a nearly empty table went on scanning it whole once it
    held thousands of rows). The engine's connections plan every execution for its own values."""
    store = Store.open(pg_cluster.new_database())
    try:
        for n in range(12):
            with store.read() as tx:
                tx.profiles.get_many([f"user-{n}", f"user-{n + 1}"])
        with store.read() as tx:
            generic, custom = tx.conn.exec_driver_sql(
                "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) FROM pg_prepared_statements "
                "WHERE statement LIKE %s", ("%FROM profiles%",)).one()
        assert custom >= 6, "the lookup was prepared (and planned again each time)"
        assert generic == 0, "no generic plan was used"
    finally:
        store.close()
