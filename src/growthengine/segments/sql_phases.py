"""The phases of a set-based rebuild timed, for its log line and the benchmark: how long each took (elapsed) and how
much CPU this process spent in it (on PostgreSQL the server's work is not counted there)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    cpu_s: float = 0.0


@dataclass
class Phases:
    """Phases in the order they first ran; a phase run again (one per segment) adds up."""

    phases: dict[str, Phase] = field(default_factory=dict)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        # Durations only (a monotonic counter and this process's CPU time), never an instant: not a clock.
        start, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            phase = self.phases.setdefault(name, Phase(name))
            phase.seconds += time.perf_counter() - start
            phase.cpu_s += time.process_time() - cpu

    def add(self, name: str, seconds: float, cpu_s: float) -> None:
        phase = self.phases.setdefault(name, Phase(name))
        phase.seconds += seconds
        phase.cpu_s += cpu_s

    def __iter__(self) -> Iterator[Phase]:
        return iter(self.phases.values())

    def describe(self) -> str:
        """``typed events 1.2 s (CPU 1.1 s), ...``"""
        return ", ".join(f"{p.name} {p.seconds:,.2f} s (CPU {p.cpu_s:,.2f} s)" for p in self)
