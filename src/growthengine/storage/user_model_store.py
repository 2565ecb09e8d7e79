"""Per-user optimization models, stored as small JSON documents by kind (``send_time:push``, ``channels``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.storage.bulk_rows import write_rows
from growthengine.storage.driver_cursor import driver_rows
from growthengine.storage.event_log import in_list, list_params
from growthengine.storage.schema import user_models


class UserModelStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def get_many(self, user_ids: Sequence[str], kind: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(user_ids))
        loads = orjson.loads
        m = "%s" if self._dialect == "postgresql" else "?"
        for start in range(0, len(ids), 500):  # a batch's channel scores: plain SQL for the driver
            chunk = ids[start:start + 500]
            sql = (f"SELECT user_id, model FROM user_models WHERE kind = {m} "  # noqa: S608 (constant names)
                   f"AND {in_list(self._dialect, 'user_id', len(chunk))}")
            found.update({u: loads(doc) for u, doc in driver_rows(self._conn, sql,
                                                                 (kind, *list_params(self._dialect, chunk)))})
        return found

    def get_kinds(self, user_ids: Sequence[str], kinds: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """Several kinds of model of many users at once, by ``(user_id, kind)`` (one query per 500 users)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        ids = list(dict.fromkeys(user_ids))
        wanted = list(dict.fromkeys(kinds))
        if not ids or not wanted:
            return found
        loads = orjson.loads
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            sql = (f"SELECT user_id, kind, model FROM user_models WHERE {in_list(self._dialect, 'kind', len(wanted))} "  # noqa: S608
                   f"AND {in_list(self._dialect, 'user_id', len(chunk))}")
            params = (*list_params(self._dialect, wanted), *list_params(self._dialect, chunk))
            for user_id, kind, model in self._conn.exec_driver_sql(sql, params):
                found[(user_id, kind)] = loads(model)
        return found

    def save_rows(self, rows: Sequence[tuple[str, str, dict[str, Any]]], at_us: int) -> None:
        """Store ``(user_id, kind, model)`` rows in one statement (inserted or replaced)."""
        if not rows:
            return
        dumps = orjson.dumps
        write_rows(self._conn, self._dialect, "INSERT INTO user_models (user_id, kind, model, updated_us)",
                   "ON CONFLICT (user_id, kind) DO UPDATE SET model = excluded.model, updated_us = excluded.updated_us",
                   ("text", "text", "text", "bigint"), [(u, k, dumps(m).decode(), at_us) for u, k, m in rows],
                   key=lambda r: (r[0], r[1]))

    def sample(self, kind: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` models of ``kind``, whichever the database finds first (for a population's prior)."""
        rows = self._conn.execute(sa.select(user_models.c.model).where(user_models.c.kind == kind).limit(limit))
        return [orjson.loads(m) for (m,) in rows]

    def save_many(self, kind: str, models: dict[str, dict[str, Any]], at_us: int) -> None:
        if models:
            self.save_rows([(u, kind, m) for u, m in models.items()], at_us)
