"""What :func:`growthengine.segments.sql_compile.compile_rebuild` produces: the rebuild's SQL (its temporary
tables, the one pass per user, a query per segment) and the leaves each segment's rows carry, with the names of the
temporary tables the rebuild makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from growthengine.segments.model import ActiveDays, EventAggregate, Inactive, InSegment, Pattern, Segment

LEAVES = "ge_segment_leaves"
"""The temporary table of every user's leaf aggregates (``CompiledRebuild.setup``)."""
USER_AGGREGATES = "ge_segment_pass"
"""The temporary table of the one pass's aggregates per user (``CompiledRebuild.tables``)."""
LOG_USERS = "ge_log_users"
"""The temporary table of every user in the log (a stored event that is not a command) with the last activity
(``act_last``) read from the log's (user, instant) index, made by ``sql_typed`` before the setup."""
NON_ACTIVITY = "ge_non_activity"
"""SQLite: the temporary table of the log's events that are not activity (commands, ``identify``...), by id."""
LEAF = "ge_leaf_"
"""The prefix of the temporary tables of a leaf's rows per user (``CompiledRebuild.tables``), named by its alias."""
OPENS = "ge_segment_opens_"
"""The prefix of the temporary tables of a pattern leaf's open entities (``CompiledRebuild.tables``)."""


@dataclass(frozen=True)
class Leaf:
    """A leaf of the segment's own condition and the names of its columns in the result rows."""

    node: EventAggregate | Inactive | ActiveDays | Pattern | InSegment
    alias: str


@dataclass
class CompiledSegment:
    segment: Segment
    sql: str
    params: dict[str, Any]
    leaves: list[Leaf] = field(default_factory=list)
    facet_sql: dict[str, str] = field(default_factory=dict)
    """Per pattern leaf (its alias): the open entities, rows of (user_id, entity, ts_us, payload)."""


@dataclass
class CompiledRebuild:
    setup: str
    """A SELECT of one row per user with every leaf's columns (stored as :data:`LEAVES` before the queries)."""
    tables: dict[str, str]
    """Temporary tables made before ``setup`` (which reads them), in order: name -> its SELECT (the open entities of
    each pattern leaf, read again for the members' facets, so the pattern is computed once; the one pass; each
    other leaf's rows per user)."""
    params: dict[str, Any]
    segments: dict[str, CompiledSegment]
    skipped: dict[str, str]
    """Segments that cannot be compiled, with why."""
    by_user: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """The tables of ``tables`` with one row per user, with their columns (``user_id`` first): SQLite keeps them
    keyed by user (``WITHOUT ROWID``, written in user order), so that what joins them by user looks each user up."""
