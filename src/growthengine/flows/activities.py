"""Flow activities: the calls of flow runs to other services (an external coupon engine, an external
recommendation engine, the copy generator), made by a worker outside any database transaction.

A run that reaches such a step records the call and waits (``runner.py``); the executor claims the call, makes
it, records the answer, and books the run's timer at once so the run goes on with the recorded answer (as a
Temporal activity). A crash before the answer is recorded makes the call again after its lease (with the same
idempotency key, for the coupon engine); a crash after it repeats nothing. A slow service holds no transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from growthengine.clock import Clock, from_us, system_seconds, to_us
from growthengine.flows.actions import (
    ActionFailed,
    CouponSource,
    RecommendationSource,
    fetch_recommendations,
    issue_coupon,
)
from growthengine.flows.runner import COPY_ACTIVITY, COUPON_ACTIVITY, RECOMMENDATIONS_ACTIVITY, RUN_TIMER
from growthengine.optimize.copy_variants import CopyRequest, CopyWriter
from growthengine.storage.activity_store import Activity
from growthengine.storage.unit_of_work import Store

log = logging.getLogger(__name__)

LEASE_S = 120.0
"""A claimed call not answered within this long (system time) is made again by another worker."""
BATCH = 20


@dataclass
class ActivityExecutor:
    store: Store
    clock: Clock
    coupons: CouponSource
    recommendations: RecommendationSource
    copywriter: CopyWriter | None

    def drain(self, *, max_batches: int = 50) -> int:
        """Make the pending calls; returns how many were answered (or failed for good)."""
        done = 0
        for _ in range(max_batches):
            with self.store.transaction() as tx:
                claimed = tx.activities.claim(system_seconds(), LEASE_S, BATCH)
            if not claimed:
                break
            for activity in claimed:
                result, error = self._call(activity)
                now_us = to_us(self.clock.now())
                with self.store.transaction() as tx:
                    if tx.activities.finish(activity, result=result, error=error):
                        tx.timers.schedule(RUN_TIMER, f"run:{activity.run_id}", now_us,
                                           {"r": activity.run_id, "u": activity.user_id})
                done += 1
        return done

    def _call(self, activity: Activity) -> tuple[Any, str | None]:
        request = activity.request
        try:
            if activity.kind == COUPON_ACTIVITY:
                return issue_coupon(self.coupons, None, activity.user_id, dict(request["spec"]),
                                    str(request["key"])), None
            if activity.kind == RECOMMENDATIONS_ACTIVITY:
                return fetch_recommendations(self.recommendations, None, activity.user_id,
                                             int(request["limit"])), None
            if activity.kind == COPY_ACTIVITY and self.copywriter is not None:
                copy = self.copywriter.write(_copy_request(request), now=from_us(int(request["now_us"])))
                return {"text": copy.text, "variant": copy.variant, "source": copy.source,
                        "reason": copy.reason}, None
            return None, f"no handler for activity {activity.kind!r}"
        except ActionFailed as exc:
            return None, str(exc)
        except Exception as exc:  # a service's surprise is the run's failed step, never a crashed worker
            log.exception("activity %s of run %s failed", activity.kind, activity.run_id)
            return None, f"{type(exc).__name__}: {exc}"


def _copy_request(request: dict[str, Any]) -> CopyRequest:
    return CopyRequest(template=str(request["template"]), channel=str(request["channel"]),
                       language=str(request["language"]), tags=tuple(request["tags"]), curated=str(request["curated"]),
                       values=dict(request["values"]), required=tuple(request["required"]))

