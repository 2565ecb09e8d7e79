"""Users are hashed into a fixed number of partitions; a partition has one owner (one writer) at a time."""

from __future__ import annotations

import zlib

PARTITIONS = 64
"""Fixed for the life of a database: every event and timer row carries its partition."""

ALL_PARTITIONS: tuple[int, ...] = tuple(range(PARTITIONS))


def partition_of(user_id: str) -> int:
    """The partition of a user id (stable across processes and machines, unlike ``hash``)."""
    return zlib.crc32(user_id.encode("utf-8")) % PARTITIONS
