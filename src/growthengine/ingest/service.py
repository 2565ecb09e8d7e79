"""The ingestion path: validate calls, drop duplicates, merge identities and traits, append to the log, answer.

Nothing else runs in the ingest transaction: every stage downstream (segments, flows, sends, analytics) reads the
stored log at its own pace (``pipeline/``). Work that reaches another user's state (an identity merge) is appended
as a per-user command for that user's owner.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from growthengine.clock import Clock, to_us
from growthengine.domain.calls import Call, InvalidCall, parse_call
from growthengine.domain.events import Event
from growthengine.domain.partitions import partition_of
from growthengine.domain.profiles import ANONYMOUS_PREFIX, Profile, anonymous_key
from growthengine.domain.traits import CHANNELS
from growthengine.storage.database import is_lock_conflict
from growthengine.storage.stage_log import COMMAND
from growthengine.storage.unit_of_work import Store, Tx

MERGE_COMMAND = "merge"
"""A per-user command in the log: an anonymous visitor's history now belongs to this user."""

log = logging.getLogger(__name__)

CONFLICT_ATTEMPTS = 3
"""How many times a batch is stored when PostgreSQL undoes its transaction for a deadlock (rare: each batch
claims its users' partitions first, ``ProfileStore.claim_keys``)."""


@dataclass(slots=True)
class Rejection:
    index: int
    error: str


@dataclass(slots=True, frozen=True)
class IngestRequest:
    """One batch of raw calls (decoded JSON) as a request brings them."""

    calls: list[Any]
    default_type: str | None = None
    batch_sent_at: Any = None


@dataclass(slots=True)
class TraitWarning:
    """Part of an accepted call that was left out (a known trait the engine cannot use), and why."""

    index: int
    path: str
    message: str


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[TraitWarning] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [{"index": r.index, "error": r.error} for r in self.rejected],
        }
        if self.warnings:
            out["warnings"] = [{"index": w.index, "path": w.path, "message": w.message} for w in self.warnings]
        return out


@dataclass(slots=True)
class ParsedRequest:
    """A request's calls validated (:meth:`IngestionService.parse`), each stored call's event time, payload and
    extra encoded once, side by side; ``result`` has the request's rejections and warnings."""

    result: IngestResult
    calls: list[Call] = field(default_factory=list)
    ts_us: list[int] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)
    extras: list[str | None] = field(default_factory=list)


class IngestionService:
    """Takes decoded calls (as from ``/v1/batch``) and makes them part of the engine's state."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        future_tolerance: dt.timedelta = dt.timedelta(minutes=5),
    ) -> None:
        self._store = store
        self._clock = clock
        self._future_tolerance = future_tolerance

    def ingest(
        self, raw_calls: list[Any], *, default_type: str | None = None, batch_sent_at: Any = None,
        origin: str | None = None,
    ) -> IngestResult:
        """Validate and store a batch; a bad call is rejected alone and the rest are kept. ``origin="import"``
        stores the calls as history (``growth import``): they build state and memberships but start no flow."""
        return self.ingest_many([IngestRequest(raw_calls, default_type, batch_sent_at)], origin=origin)[0]

    def parse(self, request: IngestRequest, *, now: dt.datetime | None = None) -> ParsedRequest:
        """Validate a request's calls and encode what each stores, outside any transaction.

        The API does this on its event loop while the writer thread commits the group before (SQLite's and
        PostgreSQL's drivers let go of the GIL while they work, so the two overlap); :meth:`ingest_many` takes the
        result. Rejections and warnings are final here; ``accepted`` and ``duplicates`` are counted by the store.
        """
        now = self._clock.now() if now is None else now
        tolerance = self._future_tolerance
        default_type, sent_at = request.default_type, request.batch_sent_at
        parsed = ParsedRequest(IngestResult())
        result, calls, stamps, payloads, extras = parsed.result, parsed.calls, parsed.ts_us, parsed.payloads, \
            parsed.extras
        dumps = orjson.dumps
        for index, raw in enumerate(request.calls):
            try:
                call = parse_call(raw, now=now, future_tolerance=tolerance, default_type=default_type,
                                  batch_sent_at=sent_at)
            except InvalidCall as exc:
                result.rejected.append(Rejection(index, str(exc)))
                continue
            calls.append(call)
            stamps.append(to_us(call.timestamp))
            # The stored payload, encoded once: an identify's (cleaned) traits, any other call's properties.
            payloads.append(dumps(call.traits if call.type == "identify" else call.properties).decode())
            extras.append(dumps(call.extra).decode() if call.extra else None)
            if call.dropped:
                result.warnings += [TraitWarning(index, d.path, d.message) for d in call.dropped]
        return parsed

    def ingest_many(self, requests: Sequence[IngestRequest | ParsedRequest], *,
                    origin: str | None = None) -> list[IngestResult]:
        """Store several batches in one transaction (group commit), one result each.

        Each batch gets the answer it would have got had the batches come one after the other in this order,
        and the events and profiles stored are the same; only the commit is shared (the API uses this for requests
        that arrive together while the engine is busy, parsed beforehand by :meth:`parse`).
        """
        now = self._clock.now()
        batches = [r if isinstance(r, ParsedRequest) else self.parse(r, now=now) for r in requests]
        results = [b.result for b in batches]
        flat = ParsedRequest(IngestResult())  # every batch's calls, one after the other
        owners: list[IngestResult] = []
        for batch in batches:
            batch.result.accepted = batch.result.duplicates = 0  # a request stored again (alone) counts afresh
            flat.calls += batch.calls
            flat.ts_us += batch.ts_us
            flat.payloads += batch.payloads
            flat.extras += batch.extras
            owners += [batch.result] * len(batch.calls)
        if flat.calls:
            for attempt in range(1, CONFLICT_ATTEMPTS + 1):
                try:
                    with self._store.transaction() as tx:
                        fresh = self._drop_duplicates(tx, flat.calls, owners)
                        if fresh:
                            self._store_calls(tx, flat, owners, fresh, to_us(now), origin)
                    break
                except Exception as exc:
                    if attempt == CONFLICT_ATTEMPTS or not is_lock_conflict(exc):
                        raise
                    # Another engine's ingestion held rows this one needed in the other order (PostgreSQL chose
                    # this transaction to undo): nothing of it was stored, so store it again.
                    log.warning("ingest: a lock conflict with another transaction, storing again (%d of %d)",
                                attempt + 1, CONFLICT_ATTEMPTS)
                    for result in results:
                        result.accepted = result.duplicates = 0
        for result in results:
            if result.rejected:
                log.info("ingest: %d accepted, %d duplicate, %d rejected (first: %s)", result.accepted,
                         result.duplicates, len(result.rejected), result.rejected[0].error)
        return results

    @staticmethod
    def _drop_duplicates(tx: Tx, calls: list[Call], owners: list[IngestResult]) -> list[int]:
        """The positions of the calls to store, counting each as accepted or duplicate in its owner's result."""
        # No message ids: no query (the store reads them 500 at a time).
        seen = tx.events.existing_message_ids([c.message_id for c in calls if c.message_id is not None])
        fresh: list[int] = []
        for index, call in enumerate(calls):  # ``owners`` runs alongside ``calls``, one owner per call
            owner = owners[index]
            message_id = call.message_id
            if message_id is not None:
                if message_id in seen:
                    owner.duplicates += 1
                    continue
                seen.add(message_id)
            owner.accepted += 1
            fresh.append(index)
        return fresh

    def _store_calls(self, tx: Tx, flat: ParsedRequest, all_owners: list[IngestResult], fresh: list[int],
                     received_us: int, origin: str | None = None) -> None:
        all_calls = flat.calls
        calls = [all_calls[i] for i in fresh]
        owners = [all_owners[i] for i in fresh]
        stamps = [flat.ts_us[i] for i in fresh]
        commands: list[tuple[Any, ...]] = []
        anon_ids = [c.anonymous_id for c in calls if c.anonymous_id is not None]
        anon_ids += [c.previous_id for c in calls if c.type == "alias" and c.previous_id is not None]
        # The batch's users and visitors, claimed first and in one order: concurrent ingestions (other API
        # processes on PostgreSQL) wait for each other instead of deadlocking over new profiles, identity links or
        # a message id sent to both; and a visitor's link, read after the claim, cannot change until this commits.
        tx.profiles.claim_keys([c.user_id for c in calls if c.user_id is not None]
                               + [anonymous_key(a) for a in anon_ids])
        links = tx.profiles.linked_users(anon_ids) if anon_ids else {}
        keys = self._resolve_identities(tx, calls, commands, received_us, links)
        # Append in event-time order so that a back-filled batch reads in the log as it happened (``sorted`` is
        # stable: calls of one instant keep their order).
        order = sorted(range(len(calls)), key=stamps.__getitem__)
        partitions: dict[str, int] = {}
        payloads, extras = flat.payloads, flat.extras
        rows: list[tuple[Any, ...]] = []
        for i in order:
            call, key, at = calls[i], keys[i], fresh[i]
            partition = partitions.get(key)
            if partition is None:
                partition = partitions[key] = partition_of(key)
            rows.append((call.message_id, call.type, call.name[:200], key, call.anonymous_id, stamps[i],
                         received_us, payloads[at], extras[at], partition, origin))
        # Merge commands first: the owner folds the visitor's history in before it applies this batch.
        taken = tx.events.append_values(commands + rows)
        if taken:
            # Another engine stored these message ids at the same moment: they are duplicates, and change nothing.
            for call, owner in zip(calls, owners, strict=True):
                if call.message_id in taken:
                    owner.accepted -= 1
                    owner.duplicates += 1
            stored = [i for i in order if calls[i].message_id is None or calls[i].message_id not in taken]
        else:
            stored = order
        # A profile that only sees activity in this batch (most: tracks, pages, screens) is upserted in SQL without
        # being read; one whose traits or consent may change (an identify, an unsubscribe) is read and merged here.
        merged = {keys[i] for i in stored if _changes_traits(calls[i])}
        activity: dict[str, list[Any]] = {}  # key -> [anonymous, earliest_us, last_active_us]
        for i in stored:
            key = keys[i]
            if key in merged:
                continue
            ts_us = stamps[i]
            seen = activity.get(key)
            active = ts_us if calls[i].type in _ACTIVITY else None
            if seen is None:
                activity[key] = [key.startswith(ANONYMOUS_PREFIX), ts_us, active]
                continue
            if ts_us < seen[1]:
                seen[1] = ts_us
            if active is not None and (seen[2] is None or active > seen[2]):
                seen[2] = active
        profiles = tx.profiles.get_many(sorted(merged), for_update=True) if merged else {}
        touched: dict[str, Profile] = {}
        for i in stored:
            key = keys[i]
            if key not in merged:
                continue
            call, ts_us = calls[i], stamps[i]
            profile = profiles.get(key)
            if profile is None:
                # A visitor's call linked to a user (earlier in the same batch) lands on the user's profile:
                # the key, not the call, says whether the profile is anonymous.
                profile = Profile(user_id=key, anonymous=key.startswith(ANONYMOUS_PREFIX), first_seen_us=ts_us,
                                  updated_us=received_us)
                profiles[key] = profile
            properties = call.traits if call.type == "identify" else call.properties
            event = Event(user_id=key, name=call.name, type=call.type, ts_us=ts_us, properties=properties,
                          message_id=call.message_id)
            self._apply(profile, call, event)
            profile.updated_us = received_us
            touched[key] = profile
        tx.profiles.save_many(touched.values())
        tx.profiles.touch_many([(k, a, first, last) for k, (a, first, last) in activity.items()], received_us)

    @staticmethod
    def _apply(profile: Profile, call: Call, event: Event) -> None:
        if event.is_activity:
            profile.touch(event.ts_us)
        elif event.ts_us < profile.first_seen_us:
            profile.first_seen_us = event.ts_us
        if call.type == "identify" and call.traits:
            profile.apply_traits(call.traits, event.ts_us)
        elif call.type == "track" and call.event == "unsubscribed":
            channel = call.properties.get("channel")
            targets = CHANNELS if channel in (None, "all") else (channel,) if channel in CHANNELS else ()
            if targets:
                profile.apply_traits({"consent": {c: False for c in targets}}, event.ts_us)

    def _resolve_identities(self, tx: Tx, calls: list[Call], commands: list[tuple[Any, ...]],
                            received_us: int, links: dict[str, str]) -> list[str]:
        """The profile key of each call; an identify (or any call) with both ids links the anonymous history
        (``links``: the visitors already linked, updated here)."""
        # Links first, so that a visitor's anonymous calls earlier in the same batch land on the user too.
        for call in calls:
            if call.user_id is None:
                continue
            to_link = [call.anonymous_id] if call.anonymous_id is not None else []
            if call.type == "alias" and call.previous_id is not None:
                to_link.append(call.previous_id)
            for anon in to_link:
                if anon not in links:
                    if self._merge(tx, anon, call.user_id, to_us(call.timestamp)):
                        commands.append(_merge_command(anon, call.user_id, to_us(call.timestamp), received_us))
                    links[anon] = call.user_id
        keys: list[str] = []
        for call in calls:
            if call.user_id is not None:
                keys.append(call.user_id)
            else:
                assert call.anonymous_id is not None
                keys.append(links.get(call.anonymous_id) or anonymous_key(call.anonymous_id))
        return keys

    @staticmethod
    def _merge(tx: Tx, anonymous_id: str, user_id: str, at_us: int) -> bool:
        """Fold an anonymous visitor into the identified user (as Segment and Customer.io do); ``True`` when the
        visitor had a history that the user's owner must fold into the user's state."""
        anon_key = anonymous_key(anonymous_id)
        tx.profiles.link(anonymous_id, user_id, at_us)
        anon = tx.profiles.get(anon_key)
        if anon is None:
            return False
        moved = tx.events.reassign(anon_key, user_id)
        user = tx.profiles.get(user_id) or Profile(user_id=user_id, first_seen_us=anon.first_seen_us,
                                                   updated_us=at_us)
        user.absorb(anon)
        tx.profiles.save_many([user])
        tx.profiles.delete(anon_key)
        log.info("merged an anonymous visitor into a user (%d events moved)", moved)
        return True


_ACTIVITY = ("track", "page", "screen")  # ``Event.is_activity``


def _changes_traits(call: Call) -> bool:
    """Whether this call may change its profile's traits or consent (``IngestionService._apply``)."""
    return call.type == "identify" or (call.type == "track" and call.event == "unsubscribed")


def _merge_command(anonymous_id: str, user_id: str, at_us: int, received_us: int) -> tuple[Any, ...]:
    """A merge command as a row of the log (``EventLog.append_values``)."""
    return (None, COMMAND, MERGE_COMMAND, user_id, None, at_us, received_us,
            orjson.dumps({"anonymous": anonymous_key(anonymous_id)}).decode(), None, partition_of(user_id), None)
