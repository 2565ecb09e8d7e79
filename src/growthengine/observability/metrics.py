"""The engine's Prometheus metrics, one registry per engine (several engines in one process do not collide).

Counted in the process as things happen (a few per request or per provider call, never per event):

=========================================  ===================================================================
``growth_events_ingested_total``           calls stored (one increment per request, by its answer)
``growth_events_duplicate_total``          calls skipped as duplicates (same ``messageId``)
``growth_events_rejected_total``           calls refused one by one inside a request
``growth_http_requests_total``             answers by route template, method and status (ingest errors: 4xx)
``growth_http_request_duration_seconds``   time to answer, by route template
``growth_rate_limited_total``              429 answers, by limit (``ingest``, ``failed_key``)
=========================================  ===================================================================

Read from the database at scrape time (nothing on the hot path; see :mod:`.database_collector`): messages by
flow, channel, status and reason, timers due and how late, deliveries waiting, provider calls by provider and
outcome and their latency (``growth_provider_requests_total``, ``growth_provider_latency_seconds``: recorded by
whichever worker process made the call), pipeline lag per stage, the connection pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from growthengine.ingest.service import IngestResult
from growthengine.observability.latency import LATENCY_BUCKETS

if TYPE_CHECKING:
    from growthengine.engine import Engine
    from growthengine.observability.lag import LagSource

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = LATENCY_BUCKETS


class EngineMetrics:
    """The metrics of one engine. Build one per app (or per worker process); :meth:`render` is the scrape."""

    def __init__(self, engine: Engine | None = None, *, lag: LagSource | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.events_ingested = Counter("growth_events_ingested", "Calls stored by the ingestion API", registry=r)
        self.events_duplicate = Counter("growth_events_duplicate", "Calls skipped as duplicates (same messageId)",
                                        registry=r)
        self.events_rejected = Counter("growth_events_rejected", "Calls refused one by one inside a request",
                                       registry=r)
        self.http_requests = Counter("growth_http_requests", "HTTP answers by route template, method and status",
                                     ["route", "method", "status"], registry=r)
        self.http_duration = Histogram("growth_http_request_duration_seconds", "Time to answer a request",
                                       ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.rate_limited = Counter("growth_rate_limited", "Requests answered 429, by limit", ["limit"], registry=r)
        if engine is not None:
            from growthengine.observability.database_collector import DatabaseCollector

            r.register(DatabaseCollector(engine, lag))

    def observe_ingest(self, result: IngestResult) -> None:
        """One request's ingest answer (the ingest route calls this once per request)."""
        self.events_ingested.inc(result.accepted)
        if result.duplicates:
            self.events_duplicate.inc(result.duplicates)
        if result.rejected:
            self.events_rejected.inc(len(result.rejected))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:  # looked up once per route, method and status, not per request
            children = (self.http_requests.labels(route, method, str(status)), self.http_duration.labels(route))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_limited(self, limit: str) -> None:
        self.rate_limited.labels(limit).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of everything above (reads the database: call it off the event loop)."""
        return generate_latest(self.registry)


def sample_values(text: str, name: str) -> Mapping[str, float]:
    """The samples of one metric in an exposition, by their label string (for tests and ``growth`` tools)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            metric, _, labels = head.partition("{")
            if metric == name:
                found["{" + labels if labels else ""] = float(value)
    return found
