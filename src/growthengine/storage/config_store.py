"""The versioned config in the database (CONTRACT.md 11): every change to one segment, flow or template, with who
made it, when (business time), and the item before and after. The latest version of each item, over the shipped
defaults and the config file, is the merged config every process follows; ``max(id)`` tells a process that it
changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
import sqlalchemy as sa

from growthengine.storage.schema import RowId, metadata

ConfigKind = Literal["segment", "flow", "template"]
CONFIG_KINDS: tuple[ConfigKind, ...] = ("segment", "flow", "template")

config_versions = sa.Table(
    "config_versions",
    metadata,
    sa.Column("id", RowId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=True),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("changed_by", sa.String(200), nullable=False),
    sa.Column("changed_us", sa.BigInteger, nullable=False),
    sa.Column("before", sa.Text, nullable=True),
    sa.Index("ix_config_versions_item", "kind", "key", "version", unique=True),
)


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    id: int
    kind: ConfigKind
    key: str
    version: int
    body: Any | None
    """The item as its YAML shape; ``None`` when ``deleted``."""
    deleted: bool
    changed_by: str
    changed_us: int
    before: Any | None


def _loads(text: str | None) -> Any | None:
    return None if text is None else orjson.loads(text)


def _version(row: sa.RowMapping) -> ConfigVersion:
    return ConfigVersion(id=int(row["id"]), kind=row["kind"], key=row["key"], version=int(row["version"]),
                         body=_loads(row["body"]), deleted=bool(row["deleted"]), changed_by=row["changed_by"],
                         changed_us=int(row["changed_us"]), before=_loads(row["before"]))


class ConfigStore:
    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def stamp(self) -> int:
        """The newest change's id (0 when nothing is stored): a process reloads when it moves."""
        return int(self._conn.execute(sa.select(sa.func.coalesce(sa.func.max(config_versions.c.id), 0))).scalar()
                   or 0)

    def latest(self, kind: ConfigKind, key: str) -> ConfigVersion | None:
        row = self._conn.execute(
            sa.select(config_versions).where(config_versions.c.kind == kind, config_versions.c.key == key)
            .order_by(config_versions.c.version.desc()).limit(1)).mappings().first()
        return _version(row) if row is not None else None

    def current(self) -> list[ConfigVersion]:
        """The latest version of every stored item (deleted ones included, as tombstones)."""
        newest = (sa.select(config_versions.c.kind, config_versions.c.key,
                            sa.func.max(config_versions.c.version).label("version"))
                  .group_by(config_versions.c.kind, config_versions.c.key).subquery())
        query = (sa.select(config_versions)
                 .join(newest, sa.and_(config_versions.c.kind == newest.c.kind,
                                       config_versions.c.key == newest.c.key,
                                       config_versions.c.version == newest.c.version))
                 .order_by(config_versions.c.id))
        return [_version(row) for row in self._conn.execute(query).mappings()]

    def last_by(self, kind: ConfigKind, key: str, changed_by: str) -> ConfigVersion | None:
        row = self._conn.execute(
            sa.select(config_versions).where(config_versions.c.kind == kind, config_versions.c.key == key,
                                             config_versions.c.changed_by == changed_by)
            .order_by(config_versions.c.version.desc()).limit(1)).mappings().first()
        return _version(row) if row is not None else None

    def record(self, kind: ConfigKind, key: str, body: Any | None, *, before: Any | None, changed_by: str,
               now_us: int) -> ConfigVersion:
        """Store a new version of one item (``body`` ``None``: it is deleted)."""
        previous = self.latest(kind, key)
        version = previous.version + 1 if previous is not None else 1
        values = {"kind": kind, "key": key, "version": version, "deleted": body is None,
                  "body": None if body is None else orjson.dumps(body).decode(),
                  "before": None if before is None else orjson.dumps(before).decode(),
                  "changed_by": changed_by, "changed_us": now_us}
        new_id = self._conn.execute(config_versions.insert().values(**values)).inserted_primary_key
        assert new_id is not None
        return ConfigVersion(id=int(new_id[0]), kind=kind, key=key, version=version, body=body,
                             deleted=body is None, changed_by=changed_by, changed_us=now_us, before=before)

    def history(self, *, kind: ConfigKind | None = None, key: str | None = None, before_id: int | None = None,
                limit: int = 100) -> list[ConfigVersion]:
        """Changes, newest first."""
        query = sa.select(config_versions).order_by(config_versions.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(config_versions.c.kind == kind)
        if key is not None:
            query = query.where(config_versions.c.key == key)
        if before_id is not None:
            query = query.where(config_versions.c.id < before_id)
        return [_version(row) for row in self._conn.execute(query).mappings()]
