"""A rebuild as per-user commands in the log, applied by the segment stage of the workers that own the users.

``growth segments rebuild`` and the back-fill of an added or edited segment do not rebuild in one long transaction
(which would hold SQLite's write lock for its whole length and fight the live stage over the same users' state):
:func:`submit_rebuild` appends one ``segment_rebuild`` command per user in the log, and the segment stage applies
them in log order, in its own batches, like any command (:class:`RebuildCommands`). When the stage reaches a user's
command it has applied every event before it, so the handler folds exactly those events afresh
(``rebuild.rebuild_users``) and the stage goes on with the later ones live: a live event that arrives during a
rebuild is neither lost nor applied twice. The rebuild evaluates at the engine's business time; its entries and
exits have the origin ``rebuild`` and start no flow.

A job is the range of the command rows it appended; :func:`rebuild_progress` counts those the segment stage has
passed (its cursor in each partition), which is what ``growth segments rebuild`` shows while it waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from growthengine.domain.events import Event
from growthengine.segments.engine import SegmentEngine
from growthengine.segments.rebuild import SEGMENT_STAGE, RebuildResult, rebuild_users
from growthengine.storage.stage_log import COMMAND, Position
from growthengine.storage.unit_of_work import Tx

REBUILD_COMMAND = "segment_rebuild"
_PLAIN = {"yield_per": 0, "stream_results": False}  # never a server-side cursor (a scan may have set yield_per)


@dataclass(frozen=True)
class RebuildJob:
    """The commands one submission appended: ids ``first_id`` to ``last_id`` (name ``segment_rebuild``)."""

    first_id: int
    last_id: int
    users: int
    transitions_after: int
    """The last segment transition id before the job (its entries and exits come after it)."""


def submit_rebuild(tx: Tx, keys: Sequence[str] | None, now_us: int) -> RebuildJob:
    """One rebuild command per user in the log (``keys``: the segments to rebuild, all when ``None``)."""
    last_transition = tx.conn.execute(sa.text("SELECT MAX(id) FROM segment_transitions"),
                                      execution_options=_PLAIN).scalar()
    before = tx.conn.execute(sa.text("SELECT MAX(id) FROM events"), execution_options=_PLAIN).scalar() or 0
    users = [u for (u,) in tx.conn.execute(sa.text(
        "SELECT DISTINCT user_id FROM events WHERE type <> :c ORDER BY user_id"), {"c": COMMAND},
        execution_options=_PLAIN)]
    payload = {"keys": list(keys) if keys else None}
    tx.log.append_commands([(u, REBUILD_COMMAND, now_us, payload) for u in users], now_us)
    first, last = tx.conn.execute(sa.text(
        "SELECT MIN(id), MAX(id) FROM events WHERE type = :c AND name = :n AND id > :before"),
        {"c": COMMAND, "n": REBUILD_COMMAND, "before": before}, execution_options=_PLAIN).one()
    return RebuildJob(int(first or 0), int(last or -1), len(users), int(last_transition or 0))


def rebuild_progress(tx: Tx, job: RebuildJob) -> int:
    """How many of the job's commands the segment stage has applied."""
    position = "e.txid" if tx.dialect == "postgresql" else "0"
    return int(tx.conn.execute(sa.text(
        "SELECT COUNT(*) FROM events e JOIN stage_cursors c ON c.stage = :stage AND c.partition = e.partition "  # noqa: S608
        "WHERE e.type = :c AND e.name = :n AND e.id BETWEEN :first AND :last "
        f"AND ({position}, e.id) <= (c.tx_pos, c.id_pos)"),
        {"stage": SEGMENT_STAGE, "c": COMMAND, "n": REBUILD_COMMAND, "first": job.first_id, "last": job.last_id},
        execution_options=_PLAIN).scalar_one())


def rebuild_outcome(tx: Tx, job: RebuildJob) -> tuple[int, int]:
    """(entries, exits) recorded by rebuilds since the job was submitted."""
    rows = tx.conn.execute(sa.text(
        "SELECT kind, COUNT(*) FROM segment_transitions WHERE id > :after AND origin = 'rebuild' GROUP BY kind"),
        {"after": job.transitions_after}, execution_options=_PLAIN)
    counts = {kind: int(n) for kind, n in rows}
    return counts.get("enter", 0), counts.get("exit", 0)


class RebuildCommands:
    """The segment stage's handler of ``segment_rebuild`` commands."""

    def __init__(self, engine: SegmentEngine) -> None:
        self.engine = engine

    def on_commands(self, tx: Tx, commands: list[Event]) -> None:
        self.apply(tx, commands)

    def apply(self, tx: Tx, commands: list[Event]) -> RebuildResult:
        positions = _positions(tx, commands)
        groups: dict[tuple[str, ...], dict[str, Position]] = {}
        for command in commands:
            keys = command.properties.get("keys") or ()
            groups.setdefault(tuple(keys), {})[command.user_id] = positions[command.id or 0]
        result = RebuildResult()
        for keys, users in groups.items():
            done = rebuild_users(self.engine, tx, users, list(keys) or None)
            result.users += done.users
            result.events += done.events
            result.entered += done.entered
            result.exited += done.exited
        return result


def _positions(tx: Tx, commands: list[Event]) -> dict[int, Position]:
    """Each command's position in the log (PostgreSQL: its writer's transaction id too)."""
    ids = [c.id or 0 for c in commands]
    if tx.dialect != "postgresql":
        return {i: (0, i) for i in ids}
    rows = tx.conn.exec_driver_sql("SELECT id, txid FROM events WHERE id = ANY(%s)", (ids,),
                                   execution_options=_PLAIN)
    return {int(i): (int(txid), int(i)) for i, txid in rows}
