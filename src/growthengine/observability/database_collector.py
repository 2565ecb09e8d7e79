"""Metrics read from the database when Prometheus scrapes: they cost nothing between scrapes, and they hold for
every process that shares the database (a message sent by any worker is counted here).

Reads go through :mod:`growthengine.storage.plain_reads`, so a scrape never waits for or blocks the writers. A
part that fails (a table missing in an old database) is left out of that scrape and logged; the rest is answered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from growthengine.clock import to_us
from growthengine.observability.lag import LagSource, database_lag
from growthengine.observability.latency import LATENCY_BUCKETS
from growthengine.storage.plain_reads import read

if TYPE_CHECKING:
    from growthengine.engine import Engine

log = logging.getLogger(__name__)

_LABEL_VALUE = re.compile(r"^[a-z0-9_]{1,48}$")


def _reason(reason: Any) -> str:
    """A message's reason as a label: the gate's rule names as they are; free text (a provider's error) as
    ``other``, so that one odd error cannot make a new time series."""
    if reason is None or reason == "":
        return ""
    text = str(reason)
    return text if _LABEL_VALUE.match(text) else "other"


class DatabaseCollector(Collector):
    def __init__(self, engine: Engine, lag: LagSource | None = None) -> None:
        self.engine = engine
        self.lag = lag or database_lag(engine.store)

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time only

    def collect(self) -> Iterator[Metric]:
        for part in (self._messages, self._timers, self._deliveries, self._providers, self._lag, self._pool):
            try:
                yield from part()
            except Exception as exc:
                log.warning("metrics: %s left out of this scrape (%s)", part.__name__.strip("_"),
                            type(exc).__name__)

    def _messages(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("growth_messages_total", "Messages in the send ledger by flow, channel, status "
                                   "and reason (the rule that held, moved or suppressed them)",
                                   labels=["flow", "channel", "status", "reason"])
        counts: dict[tuple[str, str, str, str], float] = {}
        rows = read(self.engine.store, "SELECT flow_key, channel, status, reason, COUNT(*) FROM messages "
                                       "GROUP BY flow_key, channel, status, reason")
        for flow, channel, status, reason, n in rows:
            key = (str(flow), str(channel), str(status), _reason(reason))
            counts[key] = counts.get(key, 0.0) + float(n)
        for labels, n in sorted(counts.items()):
            family.add_metric(list(labels), n)
        yield family

    def _timers(self) -> Iterator[Metric]:
        now_us = to_us(self.engine.clock.now())  # timers are due in business time
        ((due, oldest),) = read(self.engine.store, "SELECT COUNT(*), MIN(due_us) FROM timers WHERE due_us <= ?",
                                [now_us])
        yield GaugeMetricFamily("growth_timers_due", "Timers whose time has come and that have not run yet",
                                value=float(due))
        late = (now_us - int(oldest)) / 1e6 if oldest is not None else 0.0
        yield GaugeMetricFamily("growth_timers_late_seconds", "How long the oldest due timer has waited",
                                value=max(0.0, late))

    def _deliveries(self) -> Iterator[Metric]:
        rows = read(self.engine.store, "SELECT provider, state, COUNT(*) FROM outbox WHERE state <> 'done' "
                                       "GROUP BY provider, state")
        family = GaugeMetricFamily("growth_deliveries", "Messages for real providers not yet done, by state "
                                   "(pending: waiting or retrying; failed: given up)", labels=["provider", "state"])
        for provider, state, n in rows:
            family.add_metric([str(provider), str(state)], float(n))
        yield family

    def _providers(self) -> Iterator[Metric]:
        """Calls to channel providers, as every worker recorded them (``provider_calls``)."""
        store = self.engine.store
        requests = CounterMetricFamily("growth_provider_requests", "Channel provider calls by outcome",
                                       labels=["provider", "outcome"])
        for provider, outcome, n in read(store, "SELECT provider, outcome, COUNT(*) FROM provider_calls "
                                                "GROUP BY provider, outcome ORDER BY provider, outcome"):
            requests.add_metric([str(provider), str(outcome)], float(n))
        yield requests
        latency = HistogramMetricFamily("growth_provider_latency_seconds", "Channel provider call time",
                                        labels=["provider"])
        columns = ", ".join(f"SUM(CASE WHEN latency_s <= {bound!r} THEN 1 ELSE 0 END)" for bound in LATENCY_BUCKETS)
        sql = f"SELECT provider, COUNT(*), SUM(latency_s), {columns} FROM provider_calls GROUP BY provider"  # noqa: S608
        for provider, count, total, *cumulative in read(store, sql):
            buckets = [(str(bound), float(n or 0)) for bound, n in zip(LATENCY_BUCKETS, cumulative, strict=True)]
            buckets.append(("+Inf", float(count)))
            latency.add_metric([str(provider)], buckets, float(total or 0.0))
        yield latency

    def _lag(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("growth_pipeline_lag_seconds", "How far each pipeline stage is behind the log",
                                   labels=["stage"])
        for stage, seconds in sorted(self.lag().items()):
            family.add_metric([stage], float(seconds))
        yield family

    def _pool(self) -> Iterator[Metric]:
        pool: Any = self.engine.store.engine.pool
        family = GaugeMetricFamily("growth_db_pool_connections", "Database connections of this process, by state",
                                   labels=["state"])
        for state, method in (("in_use", "checkedout"), ("idle", "checkedin"), ("overflow", "overflow")):
            counter = getattr(pool, method, None)
            if callable(counter):
                family.add_metric([state], float(max(0, counter())))
        size = getattr(pool, "size", None)
        if callable(size):
            yield GaugeMetricFamily("growth_db_pool_size", "Connections the pool keeps open", value=float(size()))
        yield family
