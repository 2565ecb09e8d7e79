"""``/healthz``, ``/readyz`` and ``/metrics``.

``/healthz``: the process is alive and its event loop answers (no I/O). ``/readyz``: the database answers, its
schema is the one this engine needs, and no pipeline stage is further behind than ``ready_max_lag_s``; 503 with
the failing check otherwise, so a load balancer sends no traffic to a process that cannot serve it. Both without a
key. ``/metrics``: the Prometheus text format, for the admin key or ``GROWTH_METRICS_KEY``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from growthengine.api.auth import KeyGuard
from growthengine.api.deps import client_address
from growthengine.api.errors import ApiError
from growthengine.api.responses import OrjsonResponse
from growthengine.engine import Engine
from growthengine.observability.lag import LagSource
from growthengine.observability.metrics import CONTENT_TYPE, EngineMetrics
from growthengine.storage.plain_reads import read
from growthengine.storage.revisions import schema_state

log = logging.getLogger(__name__)


def readiness(engine: Engine, lag: LagSource) -> tuple[bool, dict[str, Any]]:
    """Every check with what it found; ready only when all pass."""
    checks: dict[str, Any] = {}
    try:
        read(engine.store, "SELECT 1")
        checks["database"] = {"ok": True, "dialect": engine.store.dialect}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": f"the database does not answer ({type(exc).__name__})"}
        return False, checks
    try:
        state = schema_state(engine.store)
        checks["migrations"] = {"ok": state.up_to_date, "current": state.current, "head": state.head}
        if not state.up_to_date:
            checks["migrations"]["error"] = "the schema is not the one this engine needs: run growth db upgrade"
    except Exception as exc:
        checks["migrations"] = {"ok": False, "error": f"cannot read the schema revision ({type(exc).__name__})"}
    limit = engine.settings.ready_max_lag_s
    try:
        stages = {stage: round(float(s), 3) for stage, s in lag().items()}
        worst = max(stages.values(), default=0.0)
        checks["pipeline"] = {"ok": worst <= limit, "max_lag_s": limit, "lag_s": stages}
    except Exception as exc:
        checks["pipeline"] = {"ok": False, "error": f"cannot read the pipeline lag ({type(exc).__name__})"}
    return all(c["ok"] for c in checks.values()), checks


def operations_router(engine: Engine, metrics: EngineMetrics, lag: LagSource) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> OrjsonResponse:
        return OrjsonResponse({"status": "ok"})

    @router.get("/readyz")
    async def readyz() -> OrjsonResponse:
        ready, checks = await run_in_threadpool(readiness, engine, lag)
        if not ready:
            log.warning("not ready: %s", ", ".join(k for k, c in checks.items() if not c["ok"]))
        return OrjsonResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                              status_code=200 if ready else 503)

    @router.get("/metrics")
    async def scrape(request: Request) -> Response:
        guard: KeyGuard = request.app.state.guard
        authorization = request.headers.get("authorization")
        if not guard.is_metrics_key(authorization):
            info = guard.check(authorization, client_address(request))
            if info.role != "admin":
                raise ApiError(403, "forbidden", "/metrics needs the admin key or GROWTH_METRICS_KEY")
        body = await run_in_threadpool(metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    return router
