"""The stored JSON document of a state held in memory, encoded again only where it changed.

The owning worker writes every changed state once per batch (``state_cache.py``), and a heavy user's document is
tens of KB (their open cart items with the listings' properties, and the same items as memberships, a week of
views): encoding it whole every batch was the stage's largest cost. The parts of a state change in known ways
(``feeds.py`` and the engine keep to them), so a part still the same object, of the same length, is the same JSON:

* a membership (``m[segment]``) is replaced whole when it changes, never edited in place;
* a window (a list feed, in time order) only grows at its end in place (events in time order); a late event and
  pruning replace it with a new list: its encoding grows by the new entries' only;
* a pattern's feed (its open entities) is replaced whole when an event or a prune changes it (``feeds.py``).

Each part is kept as an :class:`orjson.Fragment` (encoded JSON that ``orjson.dumps`` copies as it is) beside a
reference to the object it encodes (so the identity cannot be reused by another object while it is kept). What
:meth:`StateDocuments.view` returns is the state with those parts swapped for their fragments: ``orjson.dumps`` of
it is the same JSON as of the state itself. Small parts (the activity, the timers, lifetime aggregates, short
windows) are encoded as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

State = dict[str, Any]

LARGE_STATE = 24
"""A state with this many entries (window entries, open pattern entities, groups, membership facets) or more is
written through its parts (a few KB of JSON)."""

SHORT_WINDOW = 16
"""A window with fewer entries is encoded as it is (a fragment costs more than it saves)."""

class _Parts:
    __slots__ = ("feeds", "members", "windows")

    def __init__(self) -> None:
        self.members: dict[str, tuple[Any, orjson.Fragment]] = {}
        self.windows: dict[str, tuple[list[Any], int, bytes, orjson.Fragment]] = {}
        self.feeds: dict[str, tuple[Any, orjson.Fragment]] = {}


class StateDocuments:
    """The encoded parts of the states a cache holds, per user."""

    def __init__(self) -> None:
        self._parts: dict[str, _Parts] = {}
        self.replaced_feeds: frozenset[str] = frozenset()
        """The feeds replaced whole when they change, never edited in place (the patterns': ``FeedPlan``)."""

    def __len__(self) -> int:
        return len(self._parts)

    def forget(self, user_ids: Iterable[str] | None) -> None:
        if user_ids is None:
            self._parts.clear()
            return
        for user_id in user_ids:
            self._parts.pop(user_id, None)

    def document(self, user_id: str, state: State) -> State:
        """What ``save_states`` should encode for this state: the state itself when it is small (a view costs more
        than it saves: most documents are a few hundred bytes), else its :meth:`view`."""
        size = 0
        for part in (state.get("f"), state.get("m")):
            if part:
                for value in part.values():
                    size += len(value)
        if size < LARGE_STATE:
            self._parts.pop(user_id, None)
            return state
        return self.view(user_id, state)

    def view(self, user_id: str, state: State) -> State:
        """``state`` with its unchanged large parts as fragments (what ``save_states`` encodes)."""
        old = self._parts.get(user_id)
        new = _Parts()
        doc: State = {}
        for key, value in state.items():
            if key == "m" and value:
                doc[key] = {segment: self._member(old, new, segment, facets) for segment, facets in value.items()}
            elif key == "f" and value:
                doc[key] = {fid: self._feed(old, new, fid, feed) for fid, feed in value.items()}
            else:
                doc[key] = value
        self._parts[user_id] = new
        return doc

    @staticmethod
    def _member(old: _Parts | None, new: _Parts, segment: str, facets: Any) -> orjson.Fragment:
        known = old.members.get(segment) if old is not None else None
        if known is not None and known[0] is facets:
            fragment = known[1]
        else:
            fragment = orjson.Fragment(orjson.dumps(facets))
        new.members[segment] = (facets, fragment)
        return fragment

    def _feed(self, old: _Parts | None, new: _Parts, fid: str, feed: Any) -> Any:
        if isinstance(feed, list):
            size = len(feed)
            if size < SHORT_WINDOW:
                return feed
            known = old.windows.get(fid) if old is not None else None
            if known is not None and known[0] is feed and known[1] == size:
                new.windows[fid] = known
                return known[3]
            if known is not None and known[0] is feed and known[1] < size:
                encoded = known[2][:-1] + b"," + orjson.dumps(feed[known[1]:])[1:]  # the appended entries only
            else:
                encoded = orjson.dumps(feed)
            fragment = orjson.Fragment(encoded)
            new.windows[fid] = (feed, size, encoded, fragment)
            return fragment
        if fid in self.replaced_feeds:
            known_feed = old.feeds.get(fid) if old is not None else None
            if known_feed is not None and known_feed[0] is feed:
                fragment = known_feed[1]
            else:
                fragment = orjson.Fragment(orjson.dumps(feed))
            new.feeds[fid] = (feed, fragment)
            return fragment
        return feed  # a lifetime aggregate: small, and edited in place


