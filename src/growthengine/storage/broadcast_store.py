"""One-off broadcasts (CONTRACT.md 11): what was asked, when, by whom, and how many members it went out to."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from growthengine.storage.schema import metadata

broadcasts = sa.Table(
    "broadcasts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("segment", sa.String(200), nullable=False),
    sa.Column("template", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("at", sa.String(64), nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=True),
    sa.Column("members", sa.Integer, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Broadcast:
    id: str
    name: str
    segment: str
    template: str
    channel: str
    at: str
    """The instant as asked (ISO) or ``best_time``."""
    at_us: int | None
    members: int
    created_by: str
    created_us: int


class BroadcastStore:
    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def add(self, broadcast: Broadcast) -> None:
        self._conn.execute(broadcasts.insert().values(
            id=broadcast.id, name=broadcast.name, segment=broadcast.segment, template=broadcast.template,
            channel=broadcast.channel, at=broadcast.at, at_us=broadcast.at_us, members=broadcast.members,
            created_by=broadcast.created_by, created_us=broadcast.created_us))

    def get(self, broadcast_id: str) -> Broadcast | None:
        row = self._conn.execute(sa.select(broadcasts).where(broadcasts.c.id == broadcast_id)).mappings().first()
        return Broadcast(**dict(row)) if row is not None else None

    def between(self, start_us: int, end_us: int, *, limit: int = 2000) -> list[Broadcast]:
        """The broadcasts going out (their instant, or when asked for a best-time one) in ``[start, end)``."""
        when = sa.func.coalesce(broadcasts.c.at_us, broadcasts.c.created_us)
        query = (sa.select(broadcasts).where(when >= start_us, when < end_us)
                 .order_by(when, broadcasts.c.id).limit(limit))
        return [Broadcast(**dict(row)) for row in self._conn.execute(query).mappings()]
