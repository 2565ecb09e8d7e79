"""Group commit for the ingestion routes: requests that arrive together share one transaction.

The engine stores events in one writer thread, one transaction at a time, off the event loop (so reads never wait
for a commit). Each request's calls are validated and encoded on the event loop as it arrives
(``IngestionService.parse``, about a millisecond for 100 calls), while the writer commits the group before: the
database driver lets go of the GIL while it writes, so the two overlap and the writer does only the storing.
While it works, further requests queue here; when it is done the whole queue is stored in one transaction
(``IngestionService.ingest_many``). Every request still gets its own answer, and only after the commit
that made its events durable. Under light load a group is one request; under load there are fewer commits, which
is what an SQLite writer spends most of its time on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from growthengine.ingest.service import IngestionService, IngestRequest, IngestResult, ParsedRequest

MAX_GROUP_CALLS = 5_000
"""A group holds at most this many calls (a request is never split); the rest go in the next group."""


class GroupCommit:
    """Queues ingestion requests of one event loop and stores each group of them in one transaction."""

    def __init__(self, ingestion: IngestionService, *, max_calls: int = MAX_GROUP_CALLS,
                 after: Callable[[], object] | None = None) -> None:
        self._ingestion = ingestion
        self._after = after  # runs after each committed group, in the writer thread (wakes the workers)
        self._max_calls = max_calls
        self._pending: deque[tuple[ParsedRequest, asyncio.Future[IngestResult]]] = deque()
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="growth-ingest")

    async def ingest(self, request: IngestRequest) -> IngestResult:
        """Store ``request`` with whatever else is queued; returns its own result once committed."""
        parsed = self._ingestion.parse(request)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._pending.append((parsed, future))
        if not self._running:
            self._running = True
            # Starts after the handlers that are ready now have queued their requests too.
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                group: list[tuple[ParsedRequest, asyncio.Future[IngestResult]]] = []
                size = 0
                while self._pending and (not group or size + len(self._pending[0][0].calls) <= self._max_calls):
                    item = self._pending.popleft()
                    group.append(item)
                    size += len(item[0].calls)
                outcomes = await loop.run_in_executor(self._writer, self._store, [r for r, _ in group])
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    _settle(future, outcome)
        finally:
            self._running = False

    def _store(self, requests: list[ParsedRequest]) -> list[IngestResult | Exception]:
        outcomes: list[IngestResult | Exception]
        try:
            outcomes = list(self._ingestion.ingest_many(requests))
        except Exception as exc:
            if len(requests) == 1:
                return [exc]
            # One request may be at fault: store each alone, so that only that one fails.
            outcomes = []
            for request in requests:
                try:
                    outcomes.append(self._ingestion.ingest_many([request])[0])
                except Exception as single_exc:
                    outcomes.append(single_exc)
        if self._after is not None and any(isinstance(o, IngestResult) for o in outcomes):
            self._after()
        return outcomes

    def close(self) -> None:
        self._writer.shutdown(wait=True)


def _settle(future: asyncio.Future[IngestResult], outcome: IngestResult | Exception) -> None:
    if future.done():  # the request went away meanwhile
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
