"""What an erasure must leave nowhere: every text column of every table searched for the person's strings."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from growthengine.storage import unit_of_work  # noqa: F401  (every module's tables join the metadata)
from growthengine.storage.schema import metadata


def text_columns() -> list[tuple[sa.Table, sa.Column[str]]]:
    return [(table, column) for table in metadata.sorted_tables for column in table.columns
            if isinstance(column.type, (sa.String, sa.Text))]


def traces(conn: sa.Connection, needles: Sequence[str]) -> list[tuple[str, str, str]]:
    """(table, column, needle) for each place that still holds one of ``needles`` (as a substring)."""
    found = []
    for table, column in text_columns():
        for needle in needles:
            pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = sa.select(sa.func.count()).select_from(table).where(column.like(pattern, escape="\\"))
            if conn.execute(query).scalar_one():
                found.append((table.name, column.name, needle))
    return found
