"""The worker: runs the pipeline's stages, the timers and the deliveries of the partitions it owns, on the real
clock, until told to stop. ``growth worker`` runs one in its own process; ``growth serve`` runs one in background
threads (never on the API's event loop)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from growthengine.engine import Engine
from growthengine.pipeline.ownership import LeaseLost

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.05
"""How long an idle worker waits for new work before it looks again (ingestion wakes it sooner)."""
LEASE_REFRESH_S = 0.5
"""How often the lease thread heartbeats and looks at the fair share (leases are extended less often)."""


@dataclass
class Worker:
    engine: Engine
    refresh_ownership: Callable[[], None] | None = None
    on_idle: Callable[[], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def run_once(self) -> int:
        """One pass over the stages and the due timers; how much work it did."""
        engine = self.engine
        try:
            done = engine.pipeline.drain(max_batches=50)
            done += engine.scheduler.run_due()
        except LeaseLost as exc:
            log.warning("%s; its work is left to the new owner", exc)
            return 0
        if done:
            engine.delivery.work_arrived.set()
        return done

    def run(self) -> None:
        """The pipeline and timer loop (blocks until :attr:`stop` is set). Leases are renewed by a thread of their
        own, so a long batch never lets them pass."""
        if self.refresh_ownership is not None:
            self.refresh_ownership()
            heartbeat = threading.Thread(target=self._heartbeat, name="growth-leases", daemon=True)
            heartbeat.start()
            self._threads.append(heartbeat)
        while not self.stop.is_set():
            try:
                did = self.run_once()
                if not did:
                    if self.on_idle is not None:
                        self.on_idle()
                    self.engine.work_arrived.wait(IDLE_WAIT_S)
                    self.engine.work_arrived.clear()
            except Exception:
                log.exception("worker pass failed; trying again shortly")
                self.stop.wait(1.0)

    def _heartbeat(self) -> None:
        assert self.refresh_ownership is not None
        while not self.stop.wait(LEASE_REFRESH_S):
            try:
                self.refresh_ownership()
            except Exception:
                log.exception("lease renewal failed; trying again in %.0fs", LEASE_REFRESH_S)

    def run_deliveries(self) -> None:
        """The outside-world loop: provider calls and flow activities (coupon, recommendation and copy services),
        which may be slow, in their own thread, outside every transaction."""
        delivery = self.engine.delivery
        while not self.stop.is_set():
            try:
                answered = self.engine.activities.drain(max_batches=5)
                if answered:
                    self.engine.work_arrived.set()  # the runs waiting for them go on
                if not delivery.drain(max_batches=10) and not answered:
                    delivery.work_arrived.wait(0.5)
                    delivery.work_arrived.clear()
            except Exception:
                log.exception("delivery pass failed; trying again shortly")
                self.stop.wait(1.0)

    def start_threads(self) -> None:
        """Run both loops in daemon threads (the embedded worker of ``growth serve``)."""
        for target, name in ((self.run, "growth-pipeline"), (self.run_deliveries, "growth-deliveries")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        self.stop.set()
        self.engine.work_arrived.set()
        self.engine.delivery.work_arrived.set()
        for thread in self._threads:
            thread.join(timeout_s)
