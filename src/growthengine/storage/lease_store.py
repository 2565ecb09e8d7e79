"""Partition leases with epochs (fencing tokens), and the registry of live workers. Times are system seconds."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from growthengine.storage.event_log import marker


class LeaseStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect
        self._m = marker(dialect)

    def heartbeat(self, worker_id: str, now_s: float, description: str) -> None:
        m = self._m
        self._conn.exec_driver_sql(
            "INSERT INTO pipeline_workers (worker_id, heartbeat_s, started_s, description) "
            f"VALUES ({m}, {m}, {m}, {m}) "
            "ON CONFLICT (worker_id) DO UPDATE SET heartbeat_s = excluded.heartbeat_s",
            (worker_id, now_s, now_s, description),
        )

    def live_workers(self, since_s: float) -> list[str]:
        rows = self._conn.exec_driver_sql(
            f"SELECT worker_id FROM pipeline_workers WHERE heartbeat_s >= {self._m} ORDER BY worker_id", (since_s,))
        return [r[0] for r in rows]

    def forget_worker(self, worker_id: str) -> None:
        self._conn.exec_driver_sql(f"DELETE FROM pipeline_workers WHERE worker_id = {self._m}", (worker_id,))

    def leases(self) -> list[tuple[int, str | None, int, float]]:
        """Every partition's ``(partition, owner, epoch, expires_s)``."""
        rows = self._conn.exec_driver_sql("SELECT partition, owner, epoch, expires_s FROM partition_leases "
                                          "ORDER BY partition")
        return [(int(p), o, int(e), float(x)) for p, o, e, x in rows]

    def renew(self, worker_id: str, partitions: Sequence[int], expires_s: float) -> dict[int, int]:
        """Extend the leases this worker still holds; returns those partitions with their epochs.

        Rows are locked in partition order, as :meth:`verify` locks them, so a renewal and a stage's fencing check
        wait for each other but never deadlock."""
        if not partitions:
            return {}
        m = self._m
        if self._dialect == "postgresql":
            rows = self._conn.exec_driver_sql(
                "UPDATE partition_leases SET expires_s = %s WHERE partition IN (SELECT partition FROM "
                "partition_leases WHERE owner = %s AND partition = ANY(%s) ORDER BY partition FOR UPDATE) "
                "RETURNING partition, epoch", (expires_s, worker_id, sorted(partitions)))
            return {int(p): int(e) for p, e in rows}
        held: dict[int, int] = {}
        for p in sorted(partitions):
            row = self._conn.exec_driver_sql(
                f"UPDATE partition_leases SET expires_s = {m} WHERE partition = {m} AND owner = {m} RETURNING epoch",
                (expires_s, p, worker_id)).first()
            if row is not None:
                held[p] = int(row[0])
        return held

    def claim(self, worker_id: str, partition: int, now_s: float, expires_s: float) -> int | None:
        """Take a partition whose lease is free or has passed; its epoch goes up by one. ``None`` if it is held."""
        m = self._m
        row = self._conn.exec_driver_sql(
            f"UPDATE partition_leases SET owner = {m}, epoch = epoch + 1, expires_s = {m} "
            f"WHERE partition = {m} AND (owner IS NULL OR expires_s < {m}) RETURNING epoch",
            (worker_id, expires_s, partition, now_s)).first()
        return int(row[0]) if row is not None else None

    def release(self, worker_id: str, partitions: Sequence[int]) -> None:
        m = self._m
        for p in sorted(partitions):
            self._conn.exec_driver_sql(
                f"UPDATE partition_leases SET owner = NULL, expires_s = 0 WHERE partition = {m} AND owner = {m}",
                (p, worker_id))

    def verify(self, worker_id: str, epochs: dict[int, int], now_s: float) -> list[int]:
        """The partitions among ``epochs`` this worker no longer holds at that epoch (the fencing check).

        On PostgreSQL the rows are locked for share until the transaction ends, so no other worker can take a
        partition between this check and the commit.
        """
        if not epochs:
            return []
        lock = " FOR SHARE" if self._dialect == "postgresql" else ""
        params: list[object]
        if self._dialect == "postgresql":
            where, params = "partition = ANY(%s)", [list(epochs)]
        else:
            where, params = f"partition IN ({','.join('?' * len(epochs))})", [*epochs]
        rows = self._conn.exec_driver_sql(
            f"SELECT partition, owner, epoch, expires_s FROM partition_leases WHERE {where} ORDER BY partition{lock}",
            tuple(params)).all()
        good = {int(p) for p, owner, epoch, expires in rows
                if owner == worker_id and int(epoch) == epochs[int(p)] and float(expires) >= now_s}
        return [p for p in epochs if p not in good]
