"""The phases of a set-based rebuild timed, for its log line and the benchmark: how long each took (elapsed) and how
much CPU this process spent in it (on PostgreSQL the server's work is not counted there; a benchmark that can read
the server's CPU gives :class:`Phases` a ``server_cpu`` reader, and each phase has the server's share too)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    cpu_s: float = 0.0
    server_cpu_s: float | None = None
    """The database server's CPU in it (its backend's), when the phases were given a reader."""


@dataclass
class Phases:
    """Phases in the order they first ran; a phase run again (one per segment) adds up."""

    phases: dict[str, Phase] = field(default_factory=dict)
    server_cpu: Callable[[], float] | None = None
    """Reads the CPU seconds the database server's backend has used so far (a benchmark's; None: not counted)."""

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        # Durations only (a monotonic counter and this process's CPU time), never an instant: not a clock.
        start, cpu = time.perf_counter(), time.process_time()
        server = self.server_cpu() if self.server_cpu is not None else 0.0
        try:
            yield
        finally:
            phase = self.phases.setdefault(name, Phase(name))
            phase.seconds += time.perf_counter() - start
            phase.cpu_s += time.process_time() - cpu
            if self.server_cpu is not None:
                phase.server_cpu_s = (phase.server_cpu_s or 0.0) + self.server_cpu() - server

    def add(self, name: str, seconds: float, cpu_s: float) -> None:
        phase = self.phases.setdefault(name, Phase(name))
        phase.seconds += seconds
        phase.cpu_s += cpu_s

    def __iter__(self) -> Iterator[Phase]:
        return iter(self.phases.values())

    def describe(self) -> str:
        """``typed events 1.2 s (CPU 1.1 s), ...`` (``server 0.9 s`` too when the server's CPU is read)."""
        return ", ".join(f"{p.name} {p.seconds:,.2f} s (CPU {p.cpu_s:,.2f} s"
                         f"{'' if p.server_cpu_s is None else f', server {p.server_cpu_s:,.2f} s'})" for p in self)
