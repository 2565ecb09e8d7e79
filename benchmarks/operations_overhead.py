"""What operating adds to each API request: the request middleware (request id, request metrics, optional access
log line), the key guard (key lookup, wrong-key and ingest limits) and the ingest counters.

    .venv/bin/python benchmarks/operations_overhead.py

Prints microseconds per request, measured in process on a no-op ASGI app (so nothing else is in the figure).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import Any

from growthengine.api.auth import KeyGuard, KeyRing
from growthengine.ingest.service import IngestResult
from growthengine.observability.logs import configure_logging
from growthengine.observability.metrics import EngineMetrics
from growthengine.observability.requests import RequestContext
from growthengine.settings import Settings

N = 100_000
SCOPE = {"type": "http", "method": "POST", "path": "/v1/batch", "headers": [(b"authorization", b"Bearer w")]}


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _receive() -> dict[str, str]:
    return {"type": "http.request"}


async def _send(message: Any) -> None:
    return None


async def _per_request(app: Any) -> float:
    started = time.perf_counter()
    for _ in range(N):
        await app(dict(SCOPE), _receive, _send)
    return (time.perf_counter() - started) / N


def main() -> None:
    metrics = EngineMetrics()
    bare = asyncio.run(_per_request(_app))
    middleware = asyncio.run(_per_request(RequestContext(_app, metrics))) - bare
    configure_logging("json", "INFO", stream=io.StringIO())
    access = asyncio.run(_per_request(RequestContext(_app, metrics, access_log=True))) - bare
    logging.getLogger().handlers.clear()
    guard = KeyGuard(KeyRing.from_keys(["a"], ["w"]), Settings(ingest_rate_per_key=1e12, ingest_burst_per_key=1e12))
    result = IngestResult(accepted=100)
    started = time.perf_counter()
    for _ in range(N):
        guard.check("Bearer w", "127.0.0.1", ingest=True)
        metrics.observe_ingest(result)
    checks = (time.perf_counter() - started) / N
    print(f"request middleware:           {middleware * 1e6:6.1f} us/request")
    print(f"  with a JSON access log line: {access * 1e6:6.1f} us/request")
    print(f"key guard + ingest counters:  {checks * 1e6:6.1f} us/request")


if __name__ == "__main__":
    main()
