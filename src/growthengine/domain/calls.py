"""Segment-spec calls (identify, track, page, screen, alias, group), parsed and validated at the edge."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from growthengine.domain.traits import DroppedTrait, clean_traits
from growthengine.timefmt import TimeFormatError, parse_instant

CALL_TYPES = ("identify", "track", "page", "screen", "alias", "group")
MAX_ID_LENGTH = 256
MAX_ID_INTEGER = 2**53 - 1  # ids sent as numbers: those every JSON reader (JavaScript too) keeps exact
# White space, as Python and JavaScript (the OpenAPI document's patterns) both count it: dropped around ids and
# event names; an id or a name of nothing else is empty.
BLANK = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
         "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff")
MAX_EVENT_NAME_LENGTH = 200
# Objects and arrays nested deeper than this are refused: the stored JSON (orjson) and Python's repr both
# have limits a few times larger, and no real event needs more.
MAX_NESTING = 64

# Fields the event log keeps in their own columns or as the payload; anything else (context, integrations,
# sentAt, a page's name, a group's groupId, an alias's previousId, ...) is kept in ``extra``.
_CORE_FIELDS = {"type", "userId", "anonymousId", "event", "properties", "traits", "timestamp", "messageId"}
# Never stored: analytics.js puts the write key (a credential) in every call it sends.
_SECRET_FIELDS = {"writeKey"}
_STORED_APART = frozenset(_CORE_FIELDS | _SECRET_FIELDS)

# Where anonymous visitors' profiles live (``domain.profiles.ANONYMOUS_PREFIX``); no userId may start with it.
_RESERVED_USER_PREFIX = "anon:"

# A client's clock may be wrong; Segment corrects for it with sentAt (client time of sending).
_MAX_SKEW = dt.timedelta(days=365 * 5)


class InvalidCall(ValueError):
    """One call could not be accepted; the message says exactly why."""


@dataclass(slots=True)
class Call:
    """One validated call, ready to be stored."""

    type: str
    user_id: str | None
    anonymous_id: str | None
    timestamp: dt.datetime
    message_id: str | None = None
    event: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    previous_id: str | None = None
    group_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    dropped: list[DroppedTrait] = field(default_factory=list)  # known traits that could not be used

    @property
    def name(self) -> str:
        """What the event log calls this call: the event name for track, else the type."""
        if self.type == "track" and self.event:
            return self.event
        return self.type


def _identifier(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if type(value) is str:  # the common case, checked as below in the same order, without the number checks
        if len(value) > MAX_ID_LENGTH:
            raise InvalidCall(f"{key} is longer than {MAX_ID_LENGTH} characters")
        text = value.strip(BLANK)
        if not text:
            raise InvalidCall(f"{key} must not be empty")
        if "\x00" in text:
            raise InvalidCall(f"{key} must not contain the NUL character (\\u0000)")
        return text
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one kind of number: 42.0 is the integer 42
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidCall(f"{key} must be a string (or an integer), got {type(value).__name__}")
    if isinstance(value, int) and abs(value) > MAX_ID_INTEGER:
        raise InvalidCall(f"{key} as a number must lie within ±{MAX_ID_INTEGER} (send larger ids as strings)")
    if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
        raise InvalidCall(f"{key} is longer than {MAX_ID_LENGTH} characters")
    text = str(value).strip(BLANK)
    if not text:
        raise InvalidCall(f"{key} must not be empty")
    if "\x00" in text:
        raise InvalidCall(f"{key} must not contain the NUL character (\\u0000)")
    return text


def _shown(value: Any) -> str:
    """A value as an error message may quote it: short, and never the repr of a large structure."""
    return repr(value[:40]) if isinstance(value, str) else type(value).__name__


def _nested_deeper_than(value: Any, limit: int, depth: int = 1) -> bool:
    """Whether objects and arrays in ``value`` (at ``depth``) nest more than ``limit`` levels.

    Level by level rather than by recursion (a call's containers are few and shallow: one pass over each level's
    children, no Python call per container), and it stops one level past ``limit``."""
    level: list[Any] = [value]
    while level:
        if depth > limit:
            return True
        if len(level) == 1:  # the usual case: one container (the call, or its one nested object)
            only = level[0]
            level = [c for c in (only.values() if isinstance(only, dict) else only) if isinstance(c, _CONTAINERS)]
        else:
            below: list[Any] = []
            for container in level:
                below += [c for c in (container.values() if isinstance(container, dict) else container)
                          if isinstance(c, _CONTAINERS)]
            level = below
        depth += 1
    return False


_CONTAINERS = (dict, list)


def _object(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidCall(f"{key} must be an object, got {type(value).__name__}")
    return value


def parse_call(
    raw: Any,
    *,
    now: dt.datetime,
    future_tolerance: dt.timedelta,
    default_type: str | None = None,
    batch_sent_at: Any = None,
) -> Call:
    """Validate one raw call (a decoded JSON value) against the Segment spec as the engine reads it."""
    if not isinstance(raw, dict):
        raise InvalidCall(f"a call must be a JSON object, got {type(raw).__name__}")
    if _nested_deeper_than(raw, MAX_NESTING):
        raise InvalidCall(f"a call may nest objects and arrays at most {MAX_NESTING} levels deep")
    call_type = raw.get("type", default_type)
    if default_type is not None and call_type != default_type:
        raise InvalidCall(f"type must be {default_type!r} on this route, got {_shown(call_type)}")
    if call_type not in CALL_TYPES:
        raise InvalidCall(f"type must be one of {', '.join(CALL_TYPES)}; got {_shown(call_type)}")

    user_id = _identifier(raw, "userId")
    if user_id is not None and user_id.startswith(_RESERVED_USER_PREFIX):
        raise InvalidCall(f"userId must not start with {_RESERVED_USER_PREFIX!r}: that prefix is reserved for "
                          "anonymous visitors (send it as anonymousId)")
    anonymous_id = _identifier(raw, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise InvalidCall("a call needs a userId or an anonymousId")

    message_id = _identifier(raw, "messageId")

    timestamp = _instant(raw, "timestamp")
    if timestamp is None:
        timestamp = _corrected_client_time(raw, now, batch_sent_at)
    else:
        _instant(raw, "originalTimestamp")  # not needed beside a timestamp, yet checked as every time on the wire
        _instant(raw, "sentAt")
        if timestamp > now and timestamp - now > future_tolerance:  # no overflow at either end of time
            raise InvalidCall(
                f"timestamp {raw['timestamp']} is more than {int(future_tolerance.total_seconds() // 60)} "
                "minutes ahead of the engine's clock"
            )

    call = Call(
        type=call_type,
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=timestamp,
        message_id=message_id,
        extra=_extra(raw),
    )

    if call_type == "track":
        event = raw.get("event")
        if not isinstance(event, str) or not event.strip(BLANK):
            raise InvalidCall("a track call needs an event name (a non-empty string)")
        if len(event) > MAX_EVENT_NAME_LENGTH:
            raise InvalidCall(f"event name is longer than {MAX_EVENT_NAME_LENGTH} characters")
        if "\x00" in event:
            raise InvalidCall("event name must not contain the NUL character (\\u0000)")
        call.event = event.strip(BLANK)
        call.properties = _object(raw, "properties")
    elif call_type in ("page", "screen"):
        call.properties = _object(raw, "properties")
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidCall("name must be a string")
        call.event = name
    elif call_type == "identify":
        call.traits, call.dropped = clean_traits(_identify_traits(raw))
    elif call_type == "group":
        call.group_id = _identifier(raw, "groupId")
        call.traits = _object(raw, "traits")
        call.properties = call.traits  # a group's traits are what its stored event carries
    elif call_type == "alias":
        call.previous_id = _identifier(raw, "previousId")
        if call.previous_id is None:
            raise InvalidCall("an alias call needs a previousId")
        if user_id is None:
            raise InvalidCall("an alias call needs a userId")
    return call


def _extra(raw: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``raw`` kept in ``extra``, in their order (one set difference finds them: usually none or
    only ``context``)."""
    kept = raw.keys() - _STORED_APART
    if not kept:
        return {}
    if len(kept) == 1:
        key = kept.pop()
        return {key: raw[key]}
    return {k: v for k, v in raw.items() if k in kept}


def _identify_traits(raw: dict[str, Any]) -> dict[str, Any]:
    """An identify's traits: ``traits``, over those in ``context.traits`` (where RudderStack's SDKs put them)."""
    traits = _object(raw, "traits")
    context = raw.get("context")
    in_context = context.get("traits") if isinstance(context, dict) else None
    if isinstance(in_context, dict) and in_context:
        return {**in_context, **traits}
    return traits


def _instant(raw: dict[str, Any], key: str) -> dt.datetime | None:
    """The instant in ``raw[key]`` (None when absent); :class:`InvalidCall` when it is not one."""
    if raw.get(key) is None:
        return None
    try:
        return parse_instant(raw[key], field=key)
    except TimeFormatError as exc:
        raise InvalidCall(str(exc)) from None


def _corrected_client_time(raw: dict[str, Any], now: dt.datetime, batch_sent_at: Any) -> dt.datetime:
    """No ``timestamp``: take ``originalTimestamp`` corrected by the client's clock skew (``sentAt``), else now.

    This is how RudderStack and Segment SDKs that send ``originalTimestamp`` get their event times.
    """
    original_at = _instant(raw, "originalTimestamp")
    sent_at = _instant(raw, "sentAt")
    if original_at is None:
        return now
    if sent_at is None:
        if batch_sent_at is None:
            return min(original_at, now)
        try:
            sent_at = parse_instant(batch_sent_at, field="sentAt")
        except TimeFormatError as exc:
            raise InvalidCall(str(exc)) from None
    skew = sent_at - original_at
    if abs(skew) > _MAX_SKEW:
        return now
    return min(now - skew, now) if skew >= dt.timedelta(0) else now
