"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI

from growthengine import __version__
from growthengine.api import (
    routes_clock,
    routes_experiments,
    routes_inbox,
    routes_ingest,
    routes_kpis,
    routes_messages,
    routes_optimize,
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

log = logging.getLogger(__name__)


def create_app(engine: Engine, keys: KeyRing, *, run_workers: bool = True) -> FastAPI:
    """The API around an engine. On the real clock a background worker fires due timers."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = None
        if run_workers and not isinstance(engine.clock, ManualClock):
            task = asyncio.create_task(_worker(engine))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

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
    for module in (routes_ingest, routes_users, routes_segments, routes_messages, routes_inbox, routes_optimize,
                   routes_clock, routes_unsubscribe, routes_kpis, routes_webhooks, routes_experiments):
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


async def _worker(engine: Engine) -> None:
    """Fire due timers on the real clock, a little at a time, between requests; pick up config edits."""
    interval = engine.settings.worker_interval_s
    seen_mtime = _config_mtime(engine)
    while True:
        try:
            mtime = _config_mtime(engine)
            if mtime != seen_mtime:
                seen_mtime = mtime
                engine.reload_config()
            fired = engine.run_due()
            engine.delivery.drain()  # retries of deliveries to real providers that are due
            if fired:
                log.info("worker fired %d timer(s)", fired)
        except Exception:
            log.exception("worker pass failed; trying again in %.1fs", interval)
        await asyncio.sleep(interval)
