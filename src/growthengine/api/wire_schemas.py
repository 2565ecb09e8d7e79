"""The request bodies read by hand (ingestion, the test clock), as JSON Schema: every rule the engine applies to
them, stated in ``/openapi.json`` so that a client (or schemathesis) can tell a good request from a bad one.

The patterns are the engine's own (``timefmt``); identifiers follow ``domain.calls``. A rule that depends on state,
such as a timestamp more than 5 minutes ahead of the engine's clock, is described in words and answered with 409
where it can be (the test clock), or in the call's ``rejected`` entry.
"""

from __future__ import annotations

from typing import Any

from growthengine.domain.calls import BLANK, MAX_EVENT_NAME_LENGTH, MAX_ID_INTEGER, MAX_ID_LENGTH
from growthengine.timefmt import DURATION_PATTERN, INSTANT_PATTERN, OFFSET_INSTANT_PATTERN

Schema = dict[str, Any]

# White space as a regular-expression class, spelled out (``\\s`` differs between Python and JavaScript).
_BLANK = "".join(f"\\u{ord(c):04x}" for c in BLANK)
# Some character other than white space, and no NUL anywhere (no database can store it in text).
_NOT_BLANK = f"^[^\\u0000]*[^\\u0000{_BLANK}][^\\u0000]*$"
# Path and query text: no NUL (PostgreSQL refuses it in a query).
NO_NUL = "^[^\\x00]*$"
_ID_NUMBER = {"type": "integer", "minimum": -MAX_ID_INTEGER, "maximum": MAX_ID_INTEGER}


def _nullable(schema: Schema, description: str) -> Schema:
    return {"anyOf": [schema, {"type": "null"}], "description": description}


def _identifier(description: str, *, reserved_prefix: str | None = None) -> Schema:
    text: Schema = {"type": "string", "maxLength": MAX_ID_LENGTH, "pattern": _NOT_BLANK}
    if reserved_prefix:
        text["not"] = {"pattern": f"^[{_BLANK}]*{reserved_prefix}"}
    return {"anyOf": [text, _ID_NUMBER, {"type": "null"}], "description": description}


def _instant(description: str) -> Schema:
    return _nullable({"type": "string", "maxLength": 64, "pattern": INSTANT_PATTERN}, description)


_OBJECT_OR_NULL = {"type": ["object", "null"]}

_COMMON: Schema = {
    "userId": _identifier("Your id for the user (leading and trailing spaces are dropped); userId or anonymousId "
                          "is required. Not starting with 'anon:' (the engine's key for anonymous visitors).",
                          reserved_prefix="anon:"),
    "anonymousId": _identifier("The visitor's anonymous id; with a userId, the visitor's history joins the user"),
    "messageId": _identifier("Idempotency key: the same messageId again is counted in duplicates and changes nothing"),
    "timestamp": _instant("When it happened (ISO-8601; without an offset, UTC; years 1970 to 2999). Default: now. "
                          "More than 5 minutes ahead of the engine's clock is rejected."),
    "originalTimestamp": _instant("The client's time of the event; used, corrected by sentAt, without timestamp"),
    "sentAt": _instant("The client's time of sending (corrects its clock skew)"),
    "context": {"description": "Kept with the event. On identify, context.traits are traits too (RudderStack)"},
    "integrations": {"description": "Kept with the event"},
}


def _one_of_the_ids() -> list[Schema]:
    """userId or anonymousId, present and not null."""
    return [{"required": [key], "properties": {key: {"not": {"type": "null"}}}} for key in ("userId", "anonymousId")]


def _call(call_type: str, properties: Schema, required: list[str] | None = None) -> Schema:
    schema: Schema = {
        "type": "object",
        "properties": {"type": {"const": call_type, "description": f"Optional; {call_type!r} on this route"},
                       **_COMMON, **properties},
        "anyOf": _one_of_the_ids(),
        "additionalProperties": True,
    }
    if required:
        schema["required"] = required
    return schema


IDENTIFY: Schema = _call("identify", {
    "traits": {**_OBJECT_OR_NULL, "description": (
        "Merged into the profile. Known: email, phone (E.164, or a Thai national number such as 081-234-5678), "
        "name, province, timezone (IANA), language (th|en), push_token, is_seller, consent {push, email, sms, "
        "in_app, ads: bool}. A known trait whose value cannot be used is dropped and reported in warnings; the "
        "rest of the call is kept. null clears a trait.")},
})

TRACK: Schema = _call("track", {
    "event": {"type": "string", "maxLength": MAX_EVENT_NAME_LENGTH, "pattern": _NOT_BLANK,
              "description": "The event name (see the tracking plan)"},
    "properties": {**_OBJECT_OR_NULL, "description": "The event's properties"},
}, required=["event"])

BATCH: Schema = {
    "type": "object",
    "required": ["batch"],
    "properties": {
        "batch": {"type": "array", "maxItems": 1000, "items": {"description": (
            "An identify, track, page, screen, alias or group call. Each is checked alone: a bad one is listed in "
            "rejected with its index, the rest are kept.")}},
        "sentAt": {"description": "The client's time of sending, for calls without their own"},
    },
    "additionalProperties": True,
}

ADVANCE: Schema = {
    "type": "object",
    "properties": {
        "to": _nullable({"type": "string", "maxLength": 64, "pattern": OFFSET_INSTANT_PATTERN},
                        "The instant to move to, with its UTC offset; not before the clock (409)"),
        "by": _nullable({"type": "string", "maxLength": 64, "pattern": DURATION_PATTERN},
                        "An ISO-8601 duration such as PT1H or P1DT12H (at most 5 years: 409 past it)"),
    },
    "oneOf": [{"required": [key], "properties": {key: {"type": "string"}}} for key in ("to", "by")],
}


def body_doc(schema: Schema) -> dict[str, Any]:
    """``openapi_extra`` that documents a JSON request body read by hand."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
