"""``GET /v1/kpis``: the KPIs of SPEC.md 6 from the rollups (CONTRACT.md 3.2)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from growthengine.analytics.report import ReportSpanError
from growthengine.analytics.service import kpi_report
from growthengine.api.deps import get_engine, require_admin
from growthengine.api.errors import ApiError
from growthengine.api.schemas import ERROR_RESPONSES
from growthengine.api.wire_schemas import NO_NUL
from growthengine.engine import Engine
from growthengine.timefmt import DAY_OR_INSTANT_PATTERN, TimeFormatError

router = APIRouter(prefix="/v1", tags=["kpis"], dependencies=[Depends(require_admin)])


@router.get("/kpis", responses=ERROR_RESPONSES)
async def kpis(
    flow: str | None = Query(None, max_length=100, pattern=NO_NUL, description="only this flow"),
    start: str | None = Query(None, alias="from", max_length=64, json_schema_extra={"pattern": DAY_OR_INSTANT_PATTERN},
                              description="first day: an ISO date (local) or instant with its offset; default 29 "
                                          "days before to. After to, or more than a year before it: 422"),
    end: str | None = Query(None, alias="to", max_length=64, json_schema_extra={"pattern": DAY_OR_INSTANT_PATTERN},
                            description="last day, inclusive: an ISO date (local) or instant with its offset; "
                                        "default today"),
    engine: Engine = Depends(get_engine),
) -> dict[str, Any]:
    """Delivery, open, click, conversion and unsubscribe rates and uplift against the control group: overall
    (with the spec's benchmarks) and by flow, step, channel, variant and day. Each purchase is credited once, to the
    last message before it within the attribution window (``attribution: last_touch``); every row also carries the
    attributed revenue (GMV), its uplift per message against the control group with a 95 % interval
    (``revenue_uplift``) and the confirmed delivery rate; ``definitions`` says what each figure means (Thai and
    English) and ``now.scheduled`` counts the messages waiting or held right now, as ``GET /v1/messages`` lists
    them."""
    try:
        return kpi_report(engine, flow=flow or None, start=start or None, end=end or None)
    except ReportSpanError as exc:
        raise ApiError(422, "invalid_span", str(exc)) from None
    except TimeFormatError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
