"""The pipeline's state: lag per stage, live workers and their partitions (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from growthengine.api.deps import get_engine, require_admin
from growthengine.api.schemas import ERROR_RESPONSES
from growthengine.engine import Engine

router = APIRouter(prefix="/v1", tags=["pipeline"], dependencies=[Depends(require_admin)])


@router.get("/pipeline", responses=ERROR_RESPONSES, summary="Lag per stage, workers and their partitions")
def pipeline(engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    return engine.pipeline_status()
