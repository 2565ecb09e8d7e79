"""A listing's favoriters reached by a fan-out (the price drop), without a race between workers.

Favorites are facts each partition's owner records from its own users' ``favorite_added`` events (the flows stage).
On PostgreSQL the owners move at their own pace, so the worker that applies a price change cannot read the
favoriters of every partition at that moment: a user whose worker is a few batches behind would be missed though
the favorite was stored before the price change. So the fan-out goes in two steps through the log:

1. :func:`announce`: the price change's owner appends one ``listing_fanout`` command to every partition.
2. :func:`FanOut.on_commands`: each partition's owner reaches the command after every earlier event of its own
   partition (the favorites stored before the price change among them), reads the listing's favoriters of the
   partitions it applies, and appends ``flow_enroll`` commands naming them, a page of users of one partition each
   (``enrol_pages.py``; applied by the same owner, as every fan-out's enrolment is).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson

from growthengine.domain.events import Event
from growthengine.domain.partitions import ALL_PARTITIONS, partition_of
from growthengine.flows.model import Flow
from growthengine.scheduler.collector import collector_paused
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

FANOUT_COMMAND = "listing_fanout"

Enrol = Callable[[Tx, Flow, list[str], str, int, dict[str, Any], int], None]
"""``FlowEngine.command_enrollments``: ``flow_enroll`` commands, a page of one partition's users each."""


def announce(tx: Tx, flow: Flow, event: Event, entity: str, context: dict[str, Any], now_us: int) -> None:
    """One ``listing_fanout`` command per partition, for ``flow`` on the listing ``entity`` (the event's own user
    is left out when the favoriters are found)."""
    payload = {"flow": flow.key, "entity": entity, "trigger_us": event.ts_us, "context": context,
               "exclude": event.user_id}
    tx.log.append_partition_commands(event.user_id, FANOUT_COMMAND, event.ts_us, payload, ALL_PARTITIONS, now_us)


class FanOut:
    """The flows stage's handler of ``listing_fanout`` commands."""

    def __init__(self, flows: Callable[[], dict[str, Flow]], enrol: Enrol, now_us: Callable[[], int]) -> None:
        self.flows = flows
        self.enrol = enrol
        self.now_us = now_us

    def on_commands(self, tx: Tx, commands: list[Event]) -> None:
        """Append the per-user commands (a page of favoriters at a time; the cyclic collector held off, see
        :meth:`growthengine.flows.enrolment.Enrolment.enroll_many`)."""
        with collector_paused():
            self._fan_out(tx, commands)

    def _fan_out(self, tx: Tx, commands: list[Event]) -> None:
        now_us = self.now_us()
        # One fan-out's commands (a partition each) read the favoriters once.
        groups: dict[bytes, tuple[dict[str, Any], set[int]]] = {}
        for command in commands:
            p = dict(command.properties)
            partition = int(p.pop("partition", -1))
            key = orjson.dumps(p, option=orjson.OPT_SORT_KEYS)
            groups.setdefault(key, (p, set()))[1].add(partition)
        for payload, partitions in groups.values():
            flow = self.flows().get(str(payload.get("flow")))
            if flow is None:
                log.info("a fan-out of %s dropped: the flow is no longer live", payload.get("flow"))
                continue
            entity, exclude = str(payload.get("entity", "")), payload.get("exclude")
            reached: dict[int, int] = defaultdict(int)
            for chunk in tx.listings.favoriters(entity):
                users = [u for u in chunk if u != exclude and partition_of(u) in partitions]
                for user in users:
                    reached[partition_of(user)] += 1
                self.enrol(tx, flow, users, entity, int(payload.get("trigger_us", 0)),
                           dict(payload.get("context") or {}), now_us)
            if reached:
                log.info("%s: listing %s reaches %d favoriters in %d partition(s)", flow.key, entity,
                         sum(reached.values()), len(reached))
