"""Group commit for the ingestion routes: requests that arrive together share one transaction.

The engine stores events on the event loop's thread, one transaction at a time. While it works, further requests
wait in their sockets; when it is done the loop reads them all, each handler queues its batch here, and a single
flush stores the whole group in one transaction (``IngestionService.ingest_many``). Every request still gets its
own answer, and only after the commit that made its events durable. Under light load a group is one request,
exactly as before; under load there are fewer commits, which is what an SQLite writer spends most of its time on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from growthengine.ingest.service import IngestionService, IngestRequest, IngestResult

MAX_GROUP_CALLS = 5_000
"""A group holds at most this many calls (a request is never split); the rest go in the next group."""


class GroupCommit:
    """Queues ingestion requests of one event loop and stores each group of them in one transaction."""

    def __init__(self, ingestion: IngestionService, *, max_calls: int = MAX_GROUP_CALLS,
                 after: Callable[[], object] | None = None) -> None:
        self._ingestion = ingestion
        self._after = after  # runs after each committed group (the delivery worker)
        self._max_calls = max_calls
        self._pending: deque[tuple[IngestRequest, asyncio.Future[IngestResult]]] = deque()
        self._scheduled = False

    async def ingest(self, request: IngestRequest) -> IngestResult:
        """Store ``request`` with whatever else is queued; returns its own result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._pending.append((request, future))
        if not self._scheduled:
            # Runs after the handlers that are ready now have queued their requests too.
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        group: list[tuple[IngestRequest, asyncio.Future[IngestResult]]] = []
        size = 0
        while self._pending and (not group or size + len(self._pending[0][0].calls) <= self._max_calls):
            item = self._pending.popleft()
            group.append(item)
            size += len(item[0].calls)
        if self._pending:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        try:
            results = self._ingestion.ingest_many([request for request, _ in group])
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0][1], exc)
                return
            # One request may be at fault: store each alone, so that only that one fails.
            for request, future in group:
                try:
                    result = self._ingestion.ingest_many([request])[0]
                except Exception as single_exc:
                    _settle(future, single_exc)
                else:
                    _settle(future, result)
            return
        if self._after is not None:
            self._after()
        for (_, future), result in zip(group, results, strict=True):
            _settle(future, result)


def _settle(future: asyncio.Future[IngestResult], outcome: IngestResult | Exception) -> None:
    if future.done():  # the request went away meanwhile
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
