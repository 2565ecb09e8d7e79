"""The segment stage's per-user state held in memory between batches, written behind in each batch's transaction.

The worker that owns a partition is the only writer of its users' state, so it keeps the state it last wrote and
skips the read (and the JSON parse) the next time those users have events or timers. What it changes is written in
the same transaction as the stage's effects and cursor, so the stored state is always what the cursor says, and a
crash loses only the memory.

Memory must never be stale. Before every use the cache looks at its *fences* (small rows in ``engine_state``, read
in one statement, see ``storage/segment_store.py``):

* its own fence, which each of its writes sets to a new value: when the stored value is not the one it wrote last,
  a write of its own did not commit (a transaction or a savepoint rolled back), or another cache of the same
  partitions wrote (a second engine on the same file), and everything is dropped;
* one fence per partition, which every write of segment state *not* made through an owner's cache moves (a rebuild,
  a back-fill, ``growth segments rebuild`` from another process, another worker's merge of an anonymous visitor):
  the users of a partition whose fence moved are dropped;
* the partitions and lease epochs this process holds: when they change (a lease lost, taken or given back),
  everything is dropped.

A failure inside the engine's own work drops everything too (the memory may be half-changed). Eviction is plain
least-recently-used: a dropped user is read from the database the next time.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from growthengine.domain.partitions import partition_of
from growthengine.pipeline.ownership import Ownership
from growthengine.segments.pattern_horizons import Horizons
from growthengine.segments.state_document import StateDocuments
from growthengine.storage.segment_store import STATE_FENCE_PREFIX
from growthengine.storage.unit_of_work import Tx

State = dict[str, Any]

log = logging.getLogger(__name__)

CACHE_USERS = 200_000
"""Users whose segment state a worker keeps in memory (least recently used evicted first). A user's state is a
small document (activity days, the windows' recent entries, open cart items, memberships): a few KB in Python
objects, so the bound keeps the cache within a few hundred MB whatever the number of users; users beyond it are
read from the database when their events come."""

_PARTITION_FENCE = STATE_FENCE_PREFIX + "p:"
_CACHE_FENCE = STATE_FENCE_PREFIX + "w:"
_SHARED_FENCE = _CACHE_FENCE + "shared"

STALE_FENCE_US = 3_600_000_000
"""A cache's own fence not written for an hour (business time) belongs to a cache that is gone."""

SWEEP_EVERY_WRITES = 1_000
"""A cache looks for stale fences at its first write and every this many writes after."""


def _written_us(value: str) -> int:
    """When a cache fence was last written (``"instance:writes:at_us"``); 0 for a value that does not say."""
    try:
        return int(orjson.loads(value).rsplit(":", 2)[2])
    except (ValueError, IndexError, AttributeError, orjson.JSONDecodeError):
        return 0


class OwnershipView:
    """What this process holds, as a value that changes whenever the holding does (partitions and lease epochs)."""

    def __init__(self, ownership: Ownership | None = None) -> None:
        self.ownership = ownership

    @property
    def shared(self) -> bool:
        """Every partition is this process's (SQLite's one worker, the embedded engine): caches of the same
        database share one fence, so that a second engine on the same file is seen."""
        return self.ownership is None or self.ownership.every_partition

    def token(self) -> tuple[Any, ...]:
        if self.ownership is None:
            return ()
        held = getattr(self.ownership, "held", None)
        if isinstance(held, dict):
            return tuple(sorted(held.items()))
        return (self.ownership.every_partition, tuple(self.ownership.partitions()))


class StateCache:
    """A bounded LRU of users' segment state (``capacity`` users), checked against its fences before each use."""

    def __init__(self, capacity: int = CACHE_USERS, ownership: OwnershipView | None = None) -> None:
        self.capacity = capacity
        self.ownership = ownership or OwnershipView()
        self.instance = uuid.uuid4().hex[:12]
        self._states: OrderedDict[str, State] = OrderedDict()
        self.documents = StateDocuments()
        self.horizons: dict[str, Horizons] = {}
        """Per user held, the earliest times of their large pattern feeds (``pattern_horizons.py``)."""
        self._lock = threading.RLock()
        self._writes = 0
        self._own_seen: str | None = None
        self._partitions_seen: dict[str, str] = {}
        self._owner_token: tuple[Any, ...] | None = None
        self.hits = 0
        self.misses = 0
        self.drops = 0

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._states

    @property
    def own_key(self) -> str:
        if self.ownership.shared:
            return _SHARED_FENCE
        return f"{_CACHE_FENCE}{self.instance}"

    # Staying honest ---------------------------------------------------------------------------------------

    def check(self, tx: Tx) -> None:
        """Drop whatever may no longer be what is stored (see the module's docstring). Called before each use."""
        with self._lock:
            token = self.ownership.token()
            if token != self._owner_token:
                self.forget(None)
                self._owner_token = token
            fences = tx.segments.fences()
            own = fences.get(self.own_key)
            if own != self._own_seen:
                self.forget(None)
                self._own_seen = own
            partitions = {k: v for k, v in fences.items() if k.startswith(_PARTITION_FENCE)}
            if partitions != self._partitions_seen:
                moved = {k for k in partitions.keys() | self._partitions_seen.keys()
                         if partitions.get(k) != self._partitions_seen.get(k)}
                self._forget_partitions({int(k[len(_PARTITION_FENCE):]) for k in moved})
                self._partitions_seen = partitions

    def forget(self, user_ids: Iterable[str] | None) -> None:
        """Drop these users' state from memory (``None``: everyone's)."""
        with self._lock:
            if user_ids is None:
                if self._states:
                    self.drops += 1
                self._states.clear()
                self.documents.forget(None)
                self.horizons.clear()
                return
            for user_id in user_ids:
                self._states.pop(user_id, None)
                self.documents.forget((user_id,))
                self.horizons.pop(user_id, None)

    def _forget_partitions(self, partitions: set[int]) -> None:
        if partitions:
            self.forget([u for u in self._states if partition_of(u) in partitions])

    # Use ----------------------------------------------------------------------------------------------------

    def load(self, tx: Tx, user_ids: list[str], on_read: Callable[[State], object] | None = None
             ) -> dict[str, State]:
        """The users' stored state (absent: none stored), from memory where held, the rest read in one go (each
        state read is handed to ``on_read`` first)."""
        with self._lock:
            found: dict[str, State] = {}
            missing: list[str] = []
            states = self._states
            for user_id in user_ids:
                state = states.get(user_id)
                if state is None:
                    missing.append(user_id)
                else:
                    states.move_to_end(user_id)
                    found[user_id] = state
            self.hits += len(found)
            self.misses += len(missing)
            if missing:
                loaded = tx.segments.load_states(missing)
                for user_id, state in loaded.items():
                    if on_read is not None:
                        on_read(state)
                    states[user_id] = state
                found.update(loaded)
            return found

    def hold(self, user_id: str, state: State) -> None:
        """Keep a state this process is about to write (a user seen for the first time)."""
        with self._lock:
            self._states[user_id] = state
            self._states.move_to_end(user_id)

    def save(self, tx: Tx, states: dict[str, State], at_us: int) -> None:
        """Write the changed states in the caller's transaction, and move this cache's own fence with them."""
        if not states:
            return
        with self._lock:
            document = self.documents.document
            tx.segments.save_states({u: document(u, s) for u, s in states.items()}, at_us, owned=True)
            self._writes += 1
            value = orjson.dumps(f"{self.instance}:{self._writes}:{at_us}").decode()
            tx.segments.put_fences({self.own_key: value})
            self._own_seen = value
            if self._writes % SWEEP_EVERY_WRITES == 1:
                self._sweep(tx, at_us)
            self._trim()

    def _sweep(self, tx: Tx, at_us: int) -> None:
        """Delete the own fences of caches gone quiet (a worker that ended or was killed leaves its fence behind,
        one row per worker start): a cache writes its fence with every write, so one unwritten for
        ``STALE_FENCE_US`` is gone, or idle and about to drop its memory anyway (its fence missing, it forgets all)."""
        stale = [key for key, value in tx.segments.fences().items()
                 if key.startswith(_CACHE_FENCE) and key != self.own_key and key != _SHARED_FENCE
                 and _written_us(value) < at_us - STALE_FENCE_US]
        if stale:
            tx.segments.drop_fences(stale)
            log.info("segment state: %d fence(s) of caches quiet for over an hour removed", len(stale))

    def _trim(self) -> None:
        states = self._states
        while len(states) > self.capacity:
            user_id = states.popitem(last=False)[0]
            self.documents.forget((user_id,))
            self.horizons.pop(user_id, None)
