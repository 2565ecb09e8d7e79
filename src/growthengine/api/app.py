"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import Depends, FastAPI

from growthengine import __version__
from growthengine.api import (
    routes_broadcasts,
    routes_clock,
    routes_config,
    routes_experiments,
    routes_flow_preview,
    routes_inbox,
    routes_ingest,
    routes_kpis,
    routes_messages,
    routes_one_off,
    routes_optimize,
    routes_pipeline,
    routes_segments,
    routes_unsubscribe,
    routes_users,
    routes_webhooks,
)
from growthengine.api.auth import KeyRing
from growthengine.api.cors import EngineCORS
from growthengine.api.errors import install_error_handlers
from growthengine.api.query_rules import single_valued_query
from growthengine.api.responses import OrjsonResponse
from growthengine.clock import ManualClock
from growthengine.dashboard import mount_dashboard
from growthengine.engine import Engine
from growthengine.observability import LagSource, install_operations
from growthengine.pipeline.child import ChildWorker
from growthengine.pipeline.worker import Worker
from growthengine.pipeline.worker_lock import sqlite_lock_path

log = logging.getLogger(__name__)


def create_app(engine: Engine, keys: KeyRing, *, run_workers: bool = True, lag: LagSource | None = None) -> FastAPI:
    """The API around an engine. On the real clock an embedded worker (a child process; never the event loop) runs
    the pipeline, the timers and the deliveries, unless ``run_workers`` is off (``growth serve --api-only``).

    ``lag`` tells how far each pipeline stage is behind, for ``/readyz`` and ``/metrics`` (default: the pipeline's
    own lag per stage)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if run_workers and not isinstance(engine.clock, ManualClock):
            worker = start_embedded_worker(engine)
        try:
            yield
        finally:
            if worker is not None:
                await asyncio.to_thread(worker.shutdown)

    app = FastAPI(
        title="Growth Engine",
        version=__version__,
        description="Marketing automation: Segment-compatible ingestion, segments, flows, guardrails.",
        default_response_class=OrjsonResponse,
        lifespan=lifespan,
        dependencies=[Depends(single_valued_query)],
    )
    app.state.engine = engine
    app.state.keys = keys
    install_error_handlers(app)
    lag = lag or (lambda: {stage.stage: stage.seconds for stage in engine.pipeline.lag()})
    install_operations(app, engine, keys, lag=lag)  # key limits, metrics, request ids, /healthz /readyz /metrics
    for module in (routes_ingest, routes_users, routes_segments, routes_messages, routes_inbox, routes_optimize,
                   routes_clock, routes_unsubscribe, routes_kpis, routes_webhooks, routes_pipeline, routes_experiments,
                   routes_config, routes_one_off, routes_flow_preview, routes_broadcasts):
        app.include_router(module.router)
    mount_dashboard(app, engine)
    app.add_middleware(EngineCORS, origins=engine.settings.cors_origins)  # outermost: errors carry CORS too
    return app


def _config_mtime(engine: Engine) -> float | None:
    path = engine.settings.config_file
    try:
        return path.stat().st_mtime if path is not None else None
    except OSError:
        return None


def config_watcher(engine: Engine) -> Callable[[], None]:
    """Picks up edits to the config file (called by the worker when it is idle)."""
    seen = [_config_mtime(engine)]

    def look() -> None:
        mtime = _config_mtime(engine)
        if mtime != seen[0]:
            seen[0] = mtime
            engine.reload_config()
        else:
            engine.follow_config_soon(apply=True)  # the config stored over the API (by any process)

    return look


def start_embedded_worker(engine: Engine) -> Worker | ChildWorker | None:
    """The worker of ``growth serve``: a child process (``growth worker`` on the same database and config), so that
    the API keeps a core and the GIL of its own. On SQLite the child holds the file lock that makes it the only
    worker; on PostgreSQL it takes a fair share of the partitions through leases, beside any other ``growth
    worker``. Only an in-memory SQLite database, which no other process can open, runs its worker in background
    threads of this process."""
    if sqlite_lock_path(engine.settings.db_url) is not None or engine.store.dialect == "postgresql":
        return ChildWorker.start(engine.settings, wake=engine.work_arrived)
    worker = Worker(engine, on_idle=config_watcher(engine))
    worker.start_threads()
    log.info("embedded worker started in background threads")
    return worker
