"""Rules every ``/v1`` route applies to its query string, as ``/openapi.json`` states them."""

from __future__ import annotations

from fastapi import Request

from growthengine.api.errors import ApiError


async def single_valued_query(request: Request) -> None:
    """Each query parameter at most once: no route takes a list, and silently keeping one of two values could
    answer a question that was not asked."""
    if not request.url.path.startswith("/v1/"):
        return
    names = [name for name, _ in request.query_params.multi_items()]
    if len(names) != len(set(names)):
        repeated = next(name for name in names if names.count(name) > 1)
        raise ApiError(400, "invalid_request", f"the query parameter {repeated!r} is given more than once")
