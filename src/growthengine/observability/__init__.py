"""Operating the engine: health and readiness, Prometheus metrics, logs with request ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from growthengine.observability.lag import LagSource, database_lag
from growthengine.observability.metrics import EngineMetrics

if TYPE_CHECKING:
    from fastapi import FastAPI

    from growthengine.api.auth import KeyRing
    from growthengine.engine import Engine

__all__ = ["EngineMetrics", "LagSource", "install_operations"]


def install_operations(app: FastAPI, engine: Engine, keys: KeyRing, *, lag: LagSource | None = None) -> EngineMetrics:
    """Give an app its key guard (key and ingest limits), metrics, request ids, access log and health routes.

    ``lag`` answers ``{stage: seconds}`` for ``/readyz`` and ``growth_pipeline_lag_seconds`` (default: read from
    the stage cursors in the database).
    """
    from growthengine.api.auth import KeyGuard
    from growthengine.observability.health import operations_router
    from growthengine.observability.requests import RequestContext

    lag = lag or database_lag(engine.store)
    metrics = EngineMetrics(engine, lag=lag)
    app.state.metrics = metrics
    app.state.guard = KeyGuard(keys, engine.settings, on_limited=metrics.observe_limited)
    app.include_router(operations_router(engine, metrics, lag))
    app.add_middleware(RequestContext, metrics=metrics, access_log=engine.settings.access_log)
    return metrics
