"""``GET /v1/kpis``: the KPIs of SPEC.md 6 from the rollups (CONTRACT.md 3.2)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from growthengine.analytics.service import kpi_report
from growthengine.api.deps import get_engine, require_admin
from growthengine.api.errors import ApiError
from growthengine.api.schemas import ERROR_RESPONSES
from growthengine.engine import Engine
from growthengine.timefmt import TimeFormatError

router = APIRouter(prefix="/v1", tags=["kpis"], dependencies=[Depends(require_admin)])


@router.get("/kpis", responses=ERROR_RESPONSES)
async def kpis(
    flow: str | None = Query(None, max_length=100, description="only this flow"),
    start: str | None = Query(None, alias="from", max_length=64,
                              description="first day: an ISO date (local) or instant; default 29 days before to"),
    end: str | None = Query(None, alias="to", max_length=64,
                            description="last day, inclusive: an ISO date (local) or instant; default today"),
    engine: Engine = Depends(get_engine),
) -> dict[str, Any]:
    """Delivery, open, click, conversion and unsubscribe rates and uplift against the control group: overall
    (with the spec's benchmarks) and by flow, step, channel, variant and day."""
    if any("\x00" in v for v in (flow, start, end) if v):  # PostgreSQL refuses NUL in a query
        raise ApiError(400, "invalid_request", "parameters must not contain the NUL character (%00)")
    try:
        return kpi_report(engine, flow=flow or None, start=start or None, end=end or None)
    except TimeFormatError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
