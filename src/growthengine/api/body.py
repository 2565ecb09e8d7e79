"""Reading request bodies as SDKs send them: JSON, optionally gzip-compressed, bounded in size."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import Request

from growthengine.api.errors import ApiError


async def read_json(request: Request, *, max_bytes: int) -> Any:
    """The decoded JSON body; 400, 413 or 415 with a clear message when it cannot be read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise ApiError(413, "payload_too_large", f"the body is larger than {max_bytes} bytes")
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > max_bytes:
            raise ApiError(413, "payload_too_large", f"the body is larger than {max_bytes} bytes")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    data = bytes(raw)
    if encoding in ("gzip", "x-gzip", "deflate"):
        data = _inflate(data, max_bytes, gzip=encoding != "deflate")
    elif encoding not in ("", "identity"):
        raise ApiError(415, "unsupported_media_type",
                       f"Content-Encoding {encoding!r} is not supported; send identity or gzip")
    if not data.strip():
        raise ApiError(400, "invalid_json", "the body is empty; send a JSON object")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


def _inflate(data: bytes, max_bytes: int, *, gzip: bool) -> bytes:
    inflater = zlib.decompressobj(wbits=31 if gzip else 15)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise ApiError(400, "bad_encoding", f"the body is not valid {'gzip' if gzip else 'deflate'} data: {exc}") \
            from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise ApiError(413, "payload_too_large", f"the decompressed body is larger than {max_bytes} bytes")
    if not inflater.eof:  # without its end (and checksum) the body may be cut short anywhere
        raise ApiError(400, "bad_encoding", f"the {'gzip' if gzip else 'deflate'} data is incomplete")
    return out


_UNREAD = object()


async def read_json_once(request: Request, *, max_bytes: int) -> Any:
    """:func:`read_json`, decoded once per request: a dependency that looks into the body and the route share it."""
    cached = getattr(request.state, "json_body", _UNREAD)
    if cached is _UNREAD:
        cached = request.state.json_body = await read_json(request, max_bytes=max_bytes)
    return cached


def write_key_in_body(payload: Any) -> str | None:
    """The ``writeKey`` that analytics.js puts in the body (of the call, or of a batch's first call)."""
    if not isinstance(payload, dict):
        return None
    key = payload.get("writeKey")
    if key is None and isinstance(payload.get("batch"), list) and payload["batch"]:
        first = payload["batch"][0]
        key = first.get("writeKey") if isinstance(first, dict) else None
    return key if isinstance(key, str) and key else None
