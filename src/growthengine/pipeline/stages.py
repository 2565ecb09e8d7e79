"""A stage: a named consumer of the event log. It gets the stored events (and the per-user commands addressed to
it) of one batch, in log order, inside the transaction that also moves its cursor."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from growthengine.domain.events import Event
from growthengine.domain.profiles import Profile
from growthengine.storage.stage_log import COMMAND
from growthengine.storage.unit_of_work import Tx


class EventConsumer(Protocol):
    def on_events(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        """``events`` were stored (log order); ``profiles`` are their users as stored now."""


class Tail(Protocol):
    """Work the pipeline runs after its stages every batch, over another insert-only table read by its own cursor
    (the KPI rollups over ``message_events``), whether or not the log had new rows."""

    name: str

    def run(self, tx: Tx, partitions: Sequence[int], every_partition: bool) -> int:
        """Consume a batch for these partitions; returns the rows read (0: caught up)."""


CommandHandler = Callable[[Tx, list[Event]], None]
"""Applies consecutive commands of one name (log order), each addressed to a user this process owns."""


@dataclass(frozen=True)
class Stage:
    """``consumer`` hears the events; ``commands`` maps a command name to its handler (applied in log order)."""

    name: str
    consumer: EventConsumer | None
    commands: Mapping[str, CommandHandler] = field(default_factory=dict)

    def consume(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        """Apply one batch: runs of events go to the consumer together, a command between them in its place."""
        run: list[Event] = []
        commands: list[Event] = []
        for event in events:
            if event.type != COMMAND:
                if commands:
                    self._command(tx, commands)
                    commands = []
                run.append(event)
            elif event.name in self.commands:
                if run:
                    self._feed(tx, run, profiles)
                    run = []
                if commands and commands[0].name != event.name:
                    self._command(tx, commands)
                    commands = []
                commands.append(event)
        if commands:
            self._command(tx, commands)
        if run:
            self._feed(tx, run, profiles)

    def _command(self, tx: Tx, commands: list[Event]) -> None:
        self.commands[commands[0].name](tx, commands)

    def _feed(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        if self.consumer is not None:
            self.consumer.on_events(tx, events, profiles)
