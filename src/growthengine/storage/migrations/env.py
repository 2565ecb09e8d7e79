"""Alembic environment: migrations run on the connection the engine hands over (see ``storage.migrate``)."""

from __future__ import annotations

from alembic import context

from growthengine.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
