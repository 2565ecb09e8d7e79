"""``GET /v1/experiments``: every experiment with its variants, allocation, metric, state, interval and verdict
(CONTRACT.md 11)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from growthengine.api.deps import get_engine, require_admin
from growthengine.api.schemas import ERROR_RESPONSES
from growthengine.engine import Engine

router = APIRouter(prefix="/v1", tags=["experiments"], dependencies=[Depends(require_admin)])


@router.get("/experiments", responses=ERROR_RESPONSES)
async def experiments(
    flow: str | None = Query(None, max_length=100, description="only this flow's experiments"),
    engine: Engine = Depends(get_engine),
) -> dict[str, Any]:
    """Every experiment on a send step, configured or with recorded outcomes: its variants (sends, conversions,
    rate with a 95 % Wilson interval, unsubscribes, guardrail), the allocation (the explored share and who gets
    the rest), the metric, the state (``not_started``, ``running``, ``decided``), the always-valid confidence
    interval of each variant's difference to the control, and the verdict with the evidence it rests on."""
    return {"experiments": engine.experiments(flow or None)}
