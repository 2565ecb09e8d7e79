"""``flow_enroll`` commands in pages: one command names up to :data:`ENROLL_PAGE` users of one partition.

A fan-out (a price drop's favoriters, a scheduled broadcast's audience) asks each user's owner to start a run: it
never writes another partition's state itself (DESIGN.md, "The pipeline"). One command per user made the log carry
a row per favoriter, written by the fan-out and read back by the owner (about 12 % of a 20,000-user price drop).
A page goes to the partition its users share, so the owner of that partition applies it, after every earlier row
of the partition, once (the stage's cursor moves past it in the same transaction as the runs it starts), exactly
as the per-user commands were applied. A command without ``users`` names its own user (the form written before).

Pages are small enough that the smallest batch the pipeline reads (``MIN_BATCH`` rows) names no more users than its
largest batch of per-user commands did (``BATCH_SIZE``): the batch sizer counts rows, so a page command costs it
the time of ``ENROLL_PAGE`` enrolments, and the transaction it sizes stays within its bounds.

Erasure (CONTRACT: the log keeps no id of an erased user). A page's log row is keyed by a fixed key of its partition
(:func:`page_key`), never by one of the users it names, so erasing one of them (which deletes every log row keyed
by that user at once) does not take the other users' enrolments with it. The names themselves are emptied from the
page when its owner applies it, in the same transaction (:func:`applied_payload`): the erasure's tombstone lies in
the same partition after any page that names the user, so by the time every stage has applied the tombstone, no
page in the log names them (a page applied after the erasure starts nothing for them: they have no profile).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from growthengine.domain.events import Event
from growthengine.domain.partitions import PARTITIONS, partition_of
from growthengine.pipeline.runner import BATCH_SIZE, MIN_BATCH

ENROLL_COMMAND = "flow_enroll"
"""A command in the log: start a run of a flow for the users it names (``users``, all of one partition), or for its
own user when it names none."""

ENROLL_PAGE = max(1, BATCH_SIZE // MIN_BATCH)
"""Users one command names at most (20)."""

Command = tuple[str, str, int, dict[str, Any]]


def _page_keys() -> tuple[str, ...]:
    keys: dict[int, str] = {}
    n = 0
    while len(keys) < PARTITIONS:
        key = f"~flow_enroll page {n}"
        keys.setdefault(partition_of(key), key)
        n += 1
    return tuple(keys[p] for p in range(PARTITIONS))


_PAGE_KEYS = _page_keys()


def page_key(partition: int) -> str:
    """The key a page's log row is stored under: not a user's id, but it hashes to the page's partition (so the
    row lies in the partition of the users it names, like theirs)."""
    return _PAGE_KEYS[partition]


def enrol_pages(users: Sequence[str], trigger_us: int, payload: dict[str, Any]) -> list[Command]:
    """``(key, name, ts_us, payload)`` commands naming ``users`` (each once, in their order within each partition),
    at most :data:`ENROLL_PAGE` a command, each stored under its partition's :func:`page_key`."""
    by_partition: dict[int, list[str]] = defaultdict(list)
    for user in dict.fromkeys(users):
        by_partition[partition_of(user)].append(user)
    commands: list[Command] = []
    for partition, members in by_partition.items():
        for start in range(0, len(members), ENROLL_PAGE):
            page = members[start:start + ENROLL_PAGE]
            commands.append((page_key(partition), ENROLL_COMMAND, trigger_us, {**payload, "users": page}))
    return commands


def applied_payload(command: Event) -> dict[str, Any] | None:
    """What a page keeps once applied (its flow, entity and trigger time, how many it named, no names); ``None``
    for a per-user command, which is left as it is (erasing its user deletes it)."""
    p = command.properties
    users = p.get("users")
    if not isinstance(users, list):
        return None
    return {"flow": p.get("flow"), "entity": p.get("entity"), "trigger_us": p.get("trigger_us"), "users": [],
            "named": len(users)}


def named_users(command: Event) -> list[str]:
    """The users an enrolment command names: its page, or its own user (a per-user command)."""
    users = command.properties.get("users")
    if isinstance(users, list):
        return [str(u) for u in users]
    return [command.user_id]
