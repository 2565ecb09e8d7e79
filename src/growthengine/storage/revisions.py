"""Which schema revision a database is at, which one this engine needs, and bringing it there.

The migrations themselves and how they run are :func:`growthengine.storage.database.migrate`; this module only
reads and reports (for ``/readyz`` and ``growth db current|upgrade``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory

from growthengine.storage import database
from growthengine.storage.plain_reads import read
from growthengine.storage.unit_of_work import Store


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # None: no schema yet (an empty database)
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


@functools.cache
def head_revision() -> str:
    """The newest revision this engine ships (read once per process)."""
    script = ScriptDirectory(str(Path(database.__file__).parent / "migrations"))
    head = script.get_current_head()
    assert head is not None, "the engine ships no migrations"
    return head


def current_revision(store: Store) -> str | None:
    """The revision the database is at; None when it has no schema yet."""
    try:
        rows = read(store, "SELECT version_num FROM alembic_version")
    except Exception:
        if not _has_version_table(store):
            return None
        raise
    return str(rows[0][0]) if rows else None


def _has_version_table(store: Store) -> bool:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        return sa.inspect(conn).has_table("alembic_version")


def schema_state(store: Store) -> SchemaState:
    return SchemaState(current_revision(store), head_revision())


def upgrade(store: Store) -> tuple[SchemaState, SchemaState]:
    """Bring the schema to the newest revision; the state before and after."""
    before = schema_state(store)
    database.migrate(store.engine)
    return before, schema_state(store)
