"""Taking a run through its steps: each step a function of the stored run, the flow and the time."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from growthengine.clock import from_us, to_us
from growthengine.consent.unsubscribe import UnsubscribeLinks
from growthengine.content.templates import RenderedMessage, RenderError, TemplateRegistry
from growthengine.domain.messages import Message, step_message_id
from growthengine.domain.traits import has_consent
from growthengine.engagement.experiments import experiment_key
from growthengine.flows.actions import (
    ActionFailed,
    CouponSource,
    RecommendationSource,
    fetch_recommendations,
    issue_coupon,
)
from growthengine.flows.context import message_context
from growthengine.flows.dispatch import Dispatcher, Outgoing
from growthengine.flows.model import Branch, BranchCondition, CouponAction, Flow, RecommendationAction, Send, Wait
from growthengine.flows.pass_cache import PassCache, run_listing_id
from growthengine.flows.paths import DONE, enter_branch, following, resolve
from growthengine.flows.read_time import coupon_seen
from growthengine.optimize.channel_scores import counterpart_key
from growthengine.optimize.copy_variants import CopyChoice, CopyWriter
from growthengine.optimize.personalization import build_context

if TYPE_CHECKING:
    from growthengine.engagement.service import Optimizer
from growthengine.segments.feeds import zone_for
from growthengine.storage.run_store import Run
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

RUN_TIMER = "flow"
COUPON_ACTIVITY = "coupon"
RECOMMENDATIONS_ACTIVITY = "recommendations"
COPY_ACTIVITY = "copy"
MAX_STEPS_PER_PASS = 200
_ABSENT = object()  # a context key the template reads but the context does not have (not the same as None)


class Runner:
    def __init__(self, templates: TemplateRegistry, dispatcher: Dispatcher, coupons: CouponSource,
                 recommendations: RecommendationSource, *, site_url: str, business_timezone: str,
                 links: UnsubscribeLinks | None = None, optimizer: Optimizer | None = None,
                 copywriter: CopyWriter | None = None) -> None:
        self.templates = templates
        self.dispatcher = dispatcher
        self.coupons = coupons
        self.recommendations = recommendations
        self.site_url = site_url
        self.business_timezone = business_timezone
        self.links = links
        self.optimizer = optimizer
        self.copywriter = copywriter
        self.cache = PassCache(templates)
        self._renders: dict[Hashable, RenderedMessage] = {}
        self._used: dict[str, tuple[str, ...]] = {}  # per template, for a pass: the context keys its copy reads

    def tz(self, traits: dict[str, Any]) -> str:
        tz = traits.get("timezone")
        return tz if isinstance(tz, str) and tz else self.business_timezone

    def advance_many(self, tx: Tx, items: Sequence[tuple[Run, Flow, dict[str, Any]]], now_us: int,
                     out: Outgoing) -> None:
        """Advance a batch of runs: what their next steps read is read once for all of them first."""
        self.advance_each(tx, [(run, flow, traits, now_us) for run, flow, traits in items], out)

    def advance_each(self, tx: Tx, items: Sequence[tuple[Run, Flow, dict[str, Any], int]], out: Outgoing) -> None:
        """Advance a batch of runs, each as of its own instant (timers due milliseconds apart, woken together);
        what their next steps read is read once for all of them first."""
        if not items:
            return
        self.cache.prefetch(tx, [(run, flow) for run, flow, _, _ in items], min(at for *_, at in items))
        for run, flow, traits, at_us in items:
            self.advance(tx, run, flow, traits, at_us, out)

    def advance(self, tx: Tx, run: Run, flow: Flow, traits: dict[str, Any], now_us: int, out: Outgoing) -> None:
        """Take every step that is due now; stop at a wait that ends later (booking a timer) or at the end.

        Messages decided on the way are collected in ``out``; :meth:`flush` gates, records and sends them.
        """
        start_after = run.context.get("start_after_us")
        if isinstance(start_after, int) and now_us < start_after:
            out.timers.append((RUN_TIMER, f"run:{run.id}", start_after, {"r": run.id, "u": run.user_id}))
            return
        for _ in range(MAX_STEPS_PER_PASS):
            if run.status != "active":
                return
            step = resolve(flow.steps, run.cursor)
            if step is None:
                self.finish(run, "completed", None, now_us)
                return
            body = step.body
            here = run.cursor
            if isinstance(body, Wait):
                wake = self._wake(body, run, traits, now_us)
                run.cursor = following(flow.steps, here)
                if wake > now_us:
                    run.updated_us = now_us
                    out.timers.append((RUN_TIMER, f"run:{run.id}", wake, {"r": run.id, "u": run.user_id}))
                    return
                continue
            if isinstance(body, Send):
                if run.context.pop("skip_next_send", None):
                    log.info("run %s skips %s: an earlier action failed", run.id, step.name)
                elif not self._send(tx, run, flow, step.name, body, traits, now_us, out):
                    run.updated_us = now_us  # waits here for its generated copy (a recorded activity)
                    return
            elif isinstance(body, (CouponAction, RecommendationAction)):
                outcome = self._action(tx, run, step.name, body, now_us)
                if outcome == "wait":
                    run.updated_us = now_us  # waits here for the other service's answer (a recorded activity)
                    return
                if outcome == "exit":
                    self.finish(run, "exited", f"{step.name} failed", now_us)
                    return
            elif isinstance(body, Branch):
                arm = "then" if self._holds(tx, run, body.condition) else "else"
                target = enter_branch(here, arm)
                run.cursor = target if resolve(flow.steps, target) is not None else following(flow.steps, here)
                continue
            run.cursor = following(flow.steps, here)
            run.updated_us = now_us
        log.error("run %s of %s took %d steps in one pass; stopping here", run.id, flow.key, MAX_STEPS_PER_PASS)

    @staticmethod
    def finish(run: Run, status: str, reason: str | None, now_us: int) -> None:
        run.status = status
        run.cursor = DONE
        run.exit_reason = reason
        run.updated_us = now_us

    def _wake(self, wait: Wait, run: Run, traits: dict[str, Any], now_us: int) -> int:
        if wait.for_us is not None:
            return now_us + wait.for_us
        if wait.until_offset_us is not None:
            return run.trigger_us + wait.until_offset_us
        assert wait.until_local is not None
        local = from_us(now_us).astimezone(zone_for(self.tz(traits)))
        target = local.replace(hour=wait.until_local[0], minute=wait.until_local[1], second=0, microsecond=0)
        if target <= local:
            target = dt.datetime.combine(local.date() + dt.timedelta(days=1), target.timetz())
        return to_us(target)

    def flush(self, tx: Tx, out: Outgoing, now_us: int) -> None:
        self.dispatcher.flush(tx, out, now_us)
        self._renders.clear()
        self._used.clear()  # a config reload may bring other templates before the next pass
        self.cache.clear()

    def _render(self, key: str, language: Any, context: dict[str, Any], variant: str | None = None
                ) -> RenderedMessage:
        """Render, reusing the result for recipients whose copy cannot differ (same values of what it reads)."""
        used = self._used.get(key)
        if used is None:
            used = self._used[key] = tuple(sorted(self.templates.variables(key) | {"user_context"}))
        values = tuple(_hashable(context.get(k, _ABSENT)) for k in used)
        # with each value's type: 3600 and 3600.0 are equal but may not render alike
        cache_key: Hashable = (key, language, variant, values, tuple(map(type, values)))
        try:
            rendered = self._renders.get(cache_key)  # hashed once, here
        except TypeError:  # a list or a dict among the values: compared by their text
            cache_key = (key, language, variant, repr(values))
            rendered = self._renders.get(cache_key)
        if rendered is None:
            rendered = self.templates.render(key, language, context, variant=variant)
            if len(self._renders) < 10_000:
                self._renders[cache_key] = rendered
        return rendered

    def _send(self, tx: Tx, run: Run, flow: Flow, step: str, send: Send, traits: dict[str, Any],
              now_us: int, out: Outgoing) -> bool:
        """Decide the step's message into ``out``; ``False`` while the run waits for its generated copy."""
        mid = step_message_id(flow.key, run.user_id, run.entity, run.id, step)
        # the run's entity, else the listing its trigger event was about (a flow with one run per user)
        listing_id = run_listing_id(run)
        listing = self.cache.listing(tx, listing_id) if listing_id else None
        tz = self.tz(traits)
        context = message_context(run, traits, listing, now_us, site_url=self.site_url, timezone=tz)
        context["user_context"] = run.context.get("user_context", [])
        coupon = run.context.get("coupon")
        if isinstance(coupon, dict) and "coupon_seen" in self.templates.variables(send.template):
            context["coupon_seen"] = coupon_seen(tx.messages.for_run(run.id), str(coupon["code"]), exclude=mid)
        unsubscribe_url = None
        if self.links is not None and send.kind == "marketing":
            unsubscribe_url = self.links.url(run.user_id, send.channel, mid)
            context["unsubscribe_url"] = unsubscribe_url
        missing = self.templates.missing_in(send.template, context)
        if missing:
            # An earlier action could not provide what this message needs (a coupon): skip it, say why.
            run.context.setdefault("skipped", []).append({"step": step, "missing": missing, "at_us": now_us})
            log.info("run %s skips %s: no %s", run.id, step, ", ".join(missing))
            return True
        extra: dict[str, Any] = {}
        variant = None
        if send.variants:
            key = experiment_key(flow.key, step)
            assignment = self.cache.assign(tx, key, send.variants, send.experiment_mode, run.user_id,
                                           send.experiment_options)
            variant = assignment.variant
            extra["experiment"] = {"key": key, "variant": variant, "variants": list(send.variants),
                                   "mode": send.experiment_mode, "reason": assignment.reason,
                                   **({"options": dict(send.experiment_options)} if send.experiment_options else {})}
        elif len(self.templates.get(send.template).variants) > 1:
            personal = build_context(self.cache.recent_events(tx, run.user_id, now_us), now=from_us(now_us))
            context["user_context"] = list(personal.tags)
            extra["user_context"] = {"tags": list(personal.tags),
                                     "reasons": [r.reason for r in personal.reasons]}
        try:
            rendered = self._render(send.template, traits.get("language"), context, variant)
        except RenderError as exc:
            log.error("run %s: %s", run.id, exc)
            message = Message(id=mid, user_id=run.user_id, flow=flow.key, step=step, channel=send.channel,
                              kind=send.kind, status="failed", reason="render_error", scheduled_us=now_us,
                              updated_us=now_us, body="", run_id=run.id, priority=send.priority,
                              data={"error": str(exc)})
            tx.messages.add([message])
            return True
        if send.kind == "marketing" and send.channel == "email" and has_consent(traits, "push") \
                and traits.get("push_token"):
            counterpart = self._counterpart(send.template, traits.get("language"), context)
            if counterpart is not None:  # the copy it takes if the channel scores move it to push (SPEC 4.C)
                extra["counterpart"] = counterpart
        body, copy_variant = rendered.body, rendered.variant
        if self.copywriter is not None and send.channel in ("push", "in_app") and \
                (not send.variants or variant != send.variants[0]):
            # An experiment's arms other than the control are drafted for their context (SPEC 4.B: the camera
            # lover, the price sensitive); the message keeps the arm's name as its variant.
            tags = (variant,) if send.variants and variant else None
            copy = self._generated_copy(tx, run, step, send, rendered.body, rendered.language, context, coupon,
                                        now_us, tags)
            if copy is None:
                return False
            body = copy.text
            if not send.variants:
                copy_variant = copy.variant if copy.source == "generated" else copy_variant
            extra["copy"] = {"source": copy.source, "variant": copy.variant, "reason": copy.reason}
        message = Message(
            id=mid, user_id=run.user_id, flow=flow.key, step=step, channel=send.channel, kind=send.kind,
            status="scheduled", scheduled_us=now_us, updated_us=now_us, body=body, run_id=run.id,
            priority=send.priority, title=rendered.title, subject=rendered.subject, html=rendered.html,
            image_url=rendered.image_url, variant=copy_variant,
            coupon=coupon["code"] if isinstance(coupon, dict) else None,
            expires_us=now_us + send.expires_us if send.expires_us else self._coupon_expiry(send, coupon),
            data={"template": send.template, "language": rendered.language, "urgency": send.urgency,
                  "entity": run.entity, "version": flow.version, **extra,
                  **({"unsubscribe_url": unsubscribe_url} if unsubscribe_url else {})},
        )
        # The best send time within the step's span is part of the one send decision (at the flush).
        best_within = (send.best_within_us or 0) if self.optimizer is not None else 0
        out.add(message, traits, flow.holdout_pct, best_within_us=best_within, at_us=now_us)
        return True

    def _counterpart(self, template: str, language: Any, context: dict[str, Any]) -> dict[str, Any] | None:
        """The push counterpart of an email template, rendered for this message (None when there is none)."""
        key = counterpart_key(template, "push")
        if key not in self.templates or self.templates.get(key).channel != "push" or \
                self.templates.missing_in(key, context):
            return None
        try:
            alt = self._render(key, language, context)
        except RenderError as exc:
            log.warning("push counterpart %s not rendered: %s", key, exc)
            return None
        return {"channel": "push", "template": key, "title": alt.title, "body": alt.body, "image_url": alt.image_url}

    def _generated_copy(self, tx: Tx, run: Run, step: str, send: Send, curated: str, language: str,
                        context: dict[str, Any], coupon: Any, now_us: int,
                        tags: tuple[str, ...] | None = None) -> CopyChoice | None:
        """A generated variant of the rendered copy for this user's context, kept only if it passes validation
        (prices and the coupon code verbatim, length, Thai script, no placeholders); else the curated copy.

        The generator is another service: the request is recorded as an activity of the run (``None`` until a
        worker has made the call outside any transaction and recorded its answer)."""
        assert self.copywriter is not None
        facts = re.findall(r"฿[\d,]+(?:\.\d+)?|\d[\d,]*\.-", curated)  # ฿8,500 and Thai "8,500.-"
        if isinstance(coupon, dict):
            facts.append(str(coupon["code"]))
        values = {f"fact{i}": fact for i, fact in enumerate(facts)}
        key = f"{step}#copy"
        recorded = tx.activities.get(run.id, key)
        if recorded is None:
            chosen_tags = list(tags if tags is not None else context.get("user_context") or ())
            request = {"template": send.template, "channel": send.channel, "language": language,
                       "tags": chosen_tags, "curated": curated, "values": values,
                       "required": list(values), "now_us": now_us}
            tx.activities.record(run.id, key, run.user_id, COPY_ACTIVITY, request, now_us)
            return None
        if recorded.status == "pending":
            return None
        if recorded.status == "failed" or not isinstance(recorded.result, dict):
            return CopyChoice(text=curated, variant="curated", source="curated",
                              reason=f"generation failed: {recorded.error}")
        r = recorded.result
        return CopyChoice(text=str(r["text"]), variant=str(r["variant"]),
                          source="generated" if r["source"] == "generated" else "curated", reason=str(r["reason"]))

    @staticmethod
    def _coupon_expiry(send: Send, coupon: Any) -> int | None:
        """An in-app reminder of a coupon is worth showing only while the coupon is valid."""
        if send.channel == "in_app" and isinstance(coupon, dict):
            return to_us(dt.datetime.fromisoformat(coupon["expires_at"]))
        return None

    def _action(self, tx: Tx, run: Run, step: str, action: CouponAction | RecommendationAction,
                now_us: int) -> str:
        """``ok`` (the result is in the run's context, or the fallback taken), ``wait`` (a recorded call to another
        service is pending) or ``exit``."""
        try:
            if isinstance(action, CouponAction):
                spec = {"type": action.type, "value": action.value, "expiry": action.expiry}
                coupon_key = f"run:{run.id}:{step}"
                request: dict[str, Any] = {"spec": spec, "key": coupon_key}
                if self.coupons.remote:
                    result = self._recorded(tx, run, step, COUPON_ACTIVITY, request, now_us)
                    if result is None:
                        return "wait"
                    run.context["coupon"] = result
                else:
                    run.context["coupon"] = issue_coupon(self.coupons, tx, run.user_id, spec, coupon_key)
            elif self.recommendations.remote:
                result = self._recorded(tx, run, step, RECOMMENDATIONS_ACTIVITY, {"limit": action.limit}, now_us)
                if result is None:
                    return "wait"
                run.context["recommendations"] = result
            else:
                run.context["recommendations"] = fetch_recommendations(self.recommendations, tx, run.user_id,
                                                                       action.limit)
            return "ok"
        except ActionFailed as exc:
            run.context.setdefault("action_failures", []).append({"step": step, "error": str(exc), "at_us": now_us})
            log.info("run %s step %s: %s; taking fallback %s", run.id, step, exc, action.on_failure)
            if action.on_failure == "skip_next_send":
                run.context["skip_next_send"] = True
            return "exit" if action.on_failure == "exit" else "ok"

    @staticmethod
    def _recorded(tx: Tx, run: Run, step: str, kind: str, request: dict[str, Any], now_us: int) -> Any:
        """The recorded answer of a call to another service; ``None`` while it is pending (recorded on first ask).
        A failed call raises :class:`ActionFailed` (the step's fallback)."""
        recorded = tx.activities.get(run.id, step)
        if recorded is None:
            tx.activities.record(run.id, step, run.user_id, kind, request, now_us)
            return None
        if recorded.status == "pending":
            return None
        if recorded.status == "failed":
            raise ActionFailed(recorded.error or "the service failed")
        return recorded.result

    def _holds(self, tx: Tx, run: Run, condition: BranchCondition) -> bool:
        if condition.in_segment is not None:
            return any(m.segment == condition.in_segment for m in tx.segments.members_of_user(run.user_id))
        name = "purchase" if condition.converted is not None else condition.event_since_entry
        happened = any(e.name == name for e in tx.events.for_user(run.user_id, since_us=run.entered_us))
        return happened == (condition.converted if condition.converted is not None else True)


def _hashable(value: Any) -> Any:
    """A list of the context (the user's tags, often empty) as a tuple marked as a list, for the render cache key."""
    return (list, *value) if type(value) is list else value
