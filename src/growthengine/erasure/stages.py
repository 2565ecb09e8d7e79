"""The tombstone (``erase`` command) as each pipeline stage applies it, for the users it owns.

A batch of the log ends at a tombstone (``Pipeline.tombstones``), so when a stage applies one, everything it did
for the user came from events before the erasure; events after it (the same id identified again) are a new
person and start from nothing. Events the request deleted never reach a stage; what a stage had already read of
them when the request committed (another worker, mid-batch) is cleared here too. Once every stage has applied the
tombstone, the pipeline retires it: it keeps only the token.
"""

from __future__ import annotations

from growthengine.domain.events import Event
from growthengine.pipeline.stages import CommandHandler
from growthengine.segments.engine import SegmentEngine
from growthengine.segments.segment_pass import timer_key
from growthengine.storage.unit_of_work import Tx

_ALL = 10_000_000


def token_of(command: Event) -> str:
    return str(command.properties["token"])


def keys_of(command: Event) -> list[str]:
    """The user and the anonymous visitors linked to them."""
    anonymous = command.properties.get("anonymous") or []
    return [command.user_id, *(str(a) for a in anonymous if isinstance(a, str))]


def segments_handler(segments: SegmentEngine) -> CommandHandler:
    """Segments: state, memberships, their history and the timers that would look again. No exit is announced
    (an erased user leaves no audience and starts no flow by leaving; the request queued the ads removals)."""

    def apply(tx: Tx, commands: list[Event]) -> None:
        for command in commands:
            keys = keys_of(command)
            states = tx.segments.load_states(keys)
            timer_keys = {timer_key(segment, user) for user in keys
                          for segment in set(segments.segments) | set(states.get(user, {}).get("t", {}))}
            tx.erasure.cancel_timers(sorted(timer_keys))
            tx.erasure.delete_segment_data(keys)
            segments.erased(tx, keys)  # nothing of them stays in memory, here or with another owner

    return apply


def erase_flows(tx: Tx, commands: list[Event]) -> None:
    """Flows: runs (live ones end here) and their timers and recorded calls; scheduled messages and deliveries
    still waiting are cancelled; then every message of the user loses its content and user id (the ledger keeps
    counting it under the token); coupons move to the token, favourites go, listings forget their seller."""
    for command in commands:
        user_id, token, now_us = command.user_id, token_of(command), command.ts_us
        run_ids = tx.erasure.delete_runs(user_id)
        tx.erasure.cancel_timers([f"run:{run_id}" for run_id in run_ids])
        mine = [m.id for m in tx.messages.query(user_id=user_id, limit=_ALL)]
        waiting = {m.id for m in tx.messages.query(user_id=user_id, status="scheduled", limit=_ALL)}
        waiting |= set(tx.erasure.pending_deliveries(mine))
        for message_id in sorted(waiting):
            tx.messages.update(message_id, status="cancelled", reason="erased", sent_us=None, updated_us=now_us)
        tx.erasure.cancel_timers([f"msg:{message_id}" for message_id in mine])
        tx.erasure.anonymise_messages(user_id, token)
        tx.erasure.anonymise_marketplace(user_id, token)


def erase_models(tx: Tx, commands: list[Event]) -> None:
    """Engagement: the user's send-time and channel-score models."""
    for command in commands:
        tx.erasure.delete_models(keys_of(command))


def erase_kpis(tx: Tx, commands: list[Event]) -> None:
    """Analytics: what each message counts as stays, under the token."""
    for command in commands:
        tx.erasure.anonymise_kpis(command.user_id, token_of(command))


def retire_tombstones(tx: Tx, commands: list[Event]) -> None:
    """Every stage has applied these tombstones: they keep only the token and who asked (never deleted: see
    :meth:`ErasureStore.delete_identity`)."""
    tx.erasure.retire_tombstones([(c.id, token_of(c), str(c.properties.get("source") or ""))
                                  for c in commands if c.id is not None])
