"""Which partitions this process may write: all of them (the embedded engine, one worker on SQLite) or those it
holds through leases on PostgreSQL, each with an epoch that every commit checks (a fencing token)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from growthengine.domain.partitions import ALL_PARTITIONS, PARTITIONS
from growthengine.storage.unit_of_work import Store, Tx

log = logging.getLogger(__name__)

LEASE_TTL_S = 15.0
"""A lease not renewed for this long may be taken by another worker (a dead worker's share moves within 30 s)."""
RENEW_EVERY_S = 2.0
"""Leases are extended this often; in between, :meth:`LeasedOwnership.refresh` only heartbeats and looks at the
fair share (so a worker that joins gets its share within a heartbeat or two, not a renewal period)."""
WORKER_DESCRIPTION = "growth worker"
"""What a leased worker's heartbeat row says it is (``pipeline_workers.description``)."""
JOIN_WAIT_S = 1.0
"""How long a starting worker is seen alive (a heartbeat) before it takes any partition: workers started together
then count each other and each takes its fair share at once. Without it the first to start took every partition and
gave half back a heartbeat later, losing the batch it had begun on them (about a second's work of both, seen when
two workers start on a backlog)."""


class LeaseLost(RuntimeError):
    """This worker no longer holds a partition it was writing; the transaction is rolled back."""


def process_worker_id() -> str:
    """A name for this process's worker, unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Ownership(Protocol):
    every_partition: bool
    worker_id: str
    """Who writes: a leased worker's heartbeat says it is alive (``pipeline_workers``)."""

    def partitions(self) -> tuple[int, ...]: ...

    def check(self, tx: Tx) -> None:
        """Raise :class:`LeaseLost` unless this process still owns its partitions at their epochs."""


class SoleOwner:
    """One process owns every partition (the embedded engine; the one worker on SQLite)."""

    every_partition = True

    def __init__(self) -> None:
        self.worker_id = process_worker_id()

    def partitions(self) -> tuple[int, ...]:
        return ALL_PARTITIONS

    def check(self, tx: Tx) -> None:
        return None

    def refresh(self) -> None:
        return None

    def release(self) -> None:
        return None


@dataclass
class LeasedOwnership:
    """A fair share of the partitions, held through leases in PostgreSQL (system time throughout)."""

    store: Store
    now_s: Callable[[], float]
    worker_id: str = field(default_factory=process_worker_id)
    ttl_s: float = LEASE_TTL_S
    every_partition: bool = False
    renew_every_s: float = RENEW_EVERY_S
    held: dict[int, int] = field(default_factory=dict)  # partition -> epoch
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _renewed_s: float | None = None

    def partitions(self) -> tuple[int, ...]:
        return tuple(sorted(self.held))

    def check(self, tx: Tx) -> None:
        lost = tx.leases.verify(self.worker_id, dict(self.held), self.now_s())
        if lost:
            with self._lock:
                for p in lost:
                    self.held.pop(p, None)
            raise LeaseLost(f"worker {self.worker_id} lost partitions {lost}")

    def announce(self) -> None:
        """Heartbeat only: other workers count this one from now on, before it holds anything
        (:data:`JOIN_WAIT_S`)."""
        with self._lock, self.store.transaction() as tx:
            tx.leases.heartbeat(self.worker_id, self.now_s(), WORKER_DESCRIPTION)

    def refresh(self) -> None:
        """Heartbeat, renew what is held, give back more than a fair share, take free or expired partitions."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        now = self.now_s()
        with self.store.transaction() as tx:
            tx.leases.heartbeat(self.worker_id, now, WORKER_DESCRIPTION)
            live = tx.leases.live_workers(now - self.ttl_s)
            share = -(-PARTITIONS // max(1, len(live)))  # ceiling
            due = self._renewed_s is None or now - self._renewed_s >= self.renew_every_s
            if due or len(self.held) > share:
                # What is held is confirmed here too: a lease that passed (a long pause) is no longer ours.
                self.held = tx.leases.renew(self.worker_id, list(self.held), now + self.ttl_s)
                self._renewed_s = now
            if len(self.held) > share:
                extra = sorted(self.held)[share:]
                tx.leases.release(self.worker_id, extra)
                for p in extra:
                    self.held.pop(p)
                log.info("gave back %d partition(s) to a joining worker", len(extra))
        if len(self.held) < share:
            taken: list[int] = []
            with self.store.transaction() as tx:
                for partition, owner, _epoch, expires in tx.leases.leases():
                    if len(self.held) >= share:
                        break
                    if partition in self.held or (owner is not None and expires >= now):
                        continue
                    epoch = tx.leases.claim(self.worker_id, partition, now, now + self.ttl_s)
                    if epoch is not None:
                        self.held[partition] = epoch
                        taken.append(partition)
            if taken:
                log.info("worker %s took %d partition(s); holds %d of %d", self.worker_id, len(taken),
                         len(self.held), PARTITIONS)

    def release(self) -> None:
        """Give every partition back (a clean shutdown), so others take them at once."""
        with self.store.transaction() as tx:
            tx.leases.release(self.worker_id, list(self.held))
            tx.leases.forget_worker(self.worker_id)
        self.held = {}
