"""A flow's path for one user, "what would happen" (issue 15): the user entering the flow now (business time, the
engine's clock), then each step in order as the runner would take it, nothing saved, nothing sent, no model taught.

- the entry and the exit rules (:mod:`growthengine.flows.path_entry`);
- waits, to the instant they end (with the local time in the business time zone, in Thai and English);
- branches, their condition on the user's data as it is now;
- actions: a coupon is shown as a stand-in (none is issued), the embedded recommendations are read;
- sends: the runner's own message (template, variant, counterpart copy, unsubscribe link), then the one send
  decision (:func:`growthengine.gate.batch_decision.decide_many`) at the step's instant, on the history the
  existing loader prefetches (:func:`growthengine.gate.history_loader.load_history`): send time, the SPEC 4.C
  channel switch, consent, holdout, quiet hours, caps, address. A deferred message is decided again when it comes
  due, as the dispatcher would; a message that would go counts against the caps of the later steps.

Everything runs in one transaction that is rolled back (``rolled_back``), so what a decision or a step reads and
writes on the way (a refitted send-time prior, a render failure) is never kept.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from growthengine.clock import from_us, to_us
from growthengine.content.coupons import CouponRequest
from growthengine.content.formatting import format_datetime
from growthengine.domain.messages import Message, step_message_id
from growthengine.domain.traits import has_consent
from growthengine.flows.actions import ActionFailed, fetch_recommendations
from growthengine.flows.describe import describe_step
from growthengine.flows.dispatch import Dispatcher, Outgoing
from growthengine.flows.engine import FlowEngine
from growthengine.flows.model import Branch, BranchCondition, CouponAction, Flow, RecommendationAction, Send, Wait
from growthengine.flows.one_off import OneOffRefused
from growthengine.flows.path_entry import Entry, entry
from growthengine.flows.paths import enter_branch, following, resolve
from growthengine.flows.runner import MAX_STEPS_PER_PASS, Runner
from growthengine.gate.batch_decision import available_channels, decide_many, quiet_until, window_start
from growthengine.gate.bucketing import in_holdout
from growthengine.gate.history import ADDRESS_TRAIT, Candidate, CapKey, History, Sent
from growthengine.gate.history_loader import load_history
from growthengine.gate.outcome import Decision
from growthengine.optimize.channel_scores import route
from growthengine.storage.run_store import Run
from growthengine.storage.unit_of_work import Store, Tx
from growthengine.timefmt import format_instant

PREVIEW_COUPON = "PREVIEW"
"""The code shown for a coupon step: a preview issues none."""
LANGUAGES = ("th", "en")


@dataclass
class FlowPath:
    flow: str
    user_id: str
    at_us: int
    entry: Entry
    steps: list[dict[str, Any]] = field(default_factory=list)
    business_timezone: str = "Asia/Bangkok"

    def as_json(self) -> dict[str, Any]:
        e = self.entry
        return {"flow": self.flow, "userId": self.user_id, "at": format_instant(from_us(self.at_us)),
                "local": local_labels(self.at_us, self.business_timezone), "enters": e.enters, "reason": e.reason,
                "trigger": e.trigger, "entity": e.entity or None,
                "startsAt": format_instant(from_us(e.starts_us)), "exits": e.exits, "steps": self.steps}


def local_labels(at_us: int, tz: str) -> dict[str, str]:
    """The instant in the business time zone, as the dashboard writes it in Thai and in English."""
    return {language: format_datetime(from_us(at_us), language, tz) for language in LANGUAGES}


@contextmanager
def rolled_back(store: Store) -> Iterator[Tx]:
    """A transaction whose every write is undone: the preview reads as the engine would and keeps nothing."""
    with store.engine.connect() as conn:
        transaction = conn.begin()
        try:
            yield Tx(conn, store.dialect)
        finally:
            transaction.rollback()


def preview_path(store: Store, flows: FlowEngine, flow: Flow, user_id: str, now_us: int,
                 trigger_values: dict[str, Any] | None = None) -> FlowPath:
    """What would happen if ``user_id`` entered ``flow`` at ``now_us``; :class:`OneOffRefused` (404) for an
    unknown user."""
    with rolled_back(store) as tx:
        return path_in(tx, flows, flow, user_id, now_us, trigger_values)


def path_in(tx: Tx, flows: FlowEngine, flow: Flow, user_id: str, now_us: int,
            trigger_values: dict[str, Any] | None = None) -> FlowPath:
    profile = tx.profiles.get(user_id)
    if profile is None or profile.anonymous:
        raise OneOffRefused(404, f"no user {user_id!r}")
    found = entry(tx, flows, flow, user_id, now_us, trigger_values)
    base = flows.runner
    walker = _Walker(tx, _PreviewRunner.of(base), flow, dict(profile.traits), found.run(flow, user_id))
    path = FlowPath(flow.key, user_id, now_us, found, business_timezone=base.business_timezone)
    path.steps = walker.walk(found.starts_us)
    return path


class _PreviewRunner(Runner):
    """The engine's runner with its own per-pass caches, no copy generator (a generated copy is a call to
    another service, made by a worker) and no signed unsubscribe links (a preview's link must not unsubscribe
    anyone: the copy shows the placeholder the template preview shows): the message a step makes is the runner's
    own."""

    @classmethod
    def of(cls, runner: Runner) -> _PreviewRunner:
        return cls(runner.templates, runner.dispatcher, runner.coupons, runner.recommendations,
                   site_url=runner.site_url, business_timezone=runner.business_timezone, links=None,
                   optimizer=runner.optimizer, copywriter=None)

    def message_for(self, tx: Tx, run: Run, flow: Flow, step: str, send: Send, traits: dict[str, Any],
                    at_us: int) -> Candidate | str:
        """The step's message as a send candidate, or why the runner would make none."""
        out = Outgoing()
        skipped = len(run.context.get("skipped", []))
        self._send(tx, run, flow, step, send, traits, at_us, out)
        if out.candidates:
            return out.candidates[0]
        missing = run.context.get("skipped", [])[skipped:]
        if missing:
            return f"skipped: no {', '.join(missing[-1]['missing'])} (an earlier step or the trigger gives it)"
        failed = tx.messages.get(step_message_id(flow.key, run.user_id, run.entity, run.id, step))
        return f"failed to render: {(failed.data.get('error') if failed else None) or 'render_error'}"

    def wake(self, wait: Wait, run: Run, traits: dict[str, Any], at_us: int) -> int:
        return self._wake(wait, run, traits, at_us)

    def holds(self, tx: Tx, run: Run, condition: BranchCondition) -> bool:
        return self._holds(tx, run, condition)


class _Walker:
    def __init__(self, tx: Tx, runner: _PreviewRunner, flow: Flow, traits: dict[str, Any], run: Run) -> None:
        self.tx = tx
        self.runner = runner
        self.flow = flow
        self.traits = traits
        self.run = run
        self.dispatcher: Dispatcher = runner.dispatcher
        self.tz = runner.business_timezone
        self.sent: dict[CapKey, list[Sent]] = {}  # what the path's own earlier steps would send

    def walk(self, start_us: int) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = []
        run, at_us = self.run, start_us
        for _ in range(MAX_STEPS_PER_PASS):
            step = resolve(self.flow.steps, run.cursor)
            if step is None:
                break
            here, body = run.cursor, step.body
            shown: dict[str, Any] = {"path": here, "name": step.name, "does": describe_step(step),
                                     "at": format_instant(from_us(at_us)), "local": local_labels(at_us, self.tz)}
            run.cursor = following(self.flow.steps, here)
            if isinstance(body, Wait):
                wake = self.runner.wake(body, run, self.traits, at_us)
                at_us = max(at_us, wake)
                shown.update(type="wait", until=format_instant(from_us(at_us)), untilLocal=local_labels(at_us, self.tz))
            elif isinstance(body, Send):
                shown.update(self._send(step.name, body, at_us))
            elif isinstance(body, CouponAction):
                shown.update(self._coupon(body, at_us))
            elif isinstance(body, RecommendationAction):
                shown.update(self._recommendations(body))
                if shown.get("exit"):
                    steps.append(shown)
                    break
            else:
                assert isinstance(body, Branch)
                holds = self.runner.holds(self.tx, run, body.condition)
                arm = "then" if holds else "else"
                target = enter_branch(here, arm)
                if resolve(self.flow.steps, target) is not None:
                    run.cursor = target
                condition = {k: v for k, v in dataclasses.asdict(body.condition).items() if v is not None}
                shown.update(type="branch", condition=condition, holds=holds, arm="then" if holds else "otherwise",
                             reason="on the user's data as it is now")
            steps.append(shown)
        return steps

    # -- actions ---------------------------------------------------------------------------------------------

    def _coupon(self, action: CouponAction, at_us: int) -> dict[str, Any]:
        expiry = CouponRequest.from_mapping(self.run.user_id, {"type": action.type, "value": action.value,
                                                               "expiry": action.expiry}).duration()
        expires = from_us(at_us) + expiry
        self.run.context["coupon"] = {"code": PREVIEW_COUPON, "type": action.type, "value": str(action.value),
                                      "expires_at": expires.astimezone(dt.UTC).isoformat()}
        return {"type": "coupon", "coupon": {"code": PREVIEW_COUPON, "expiresAt": format_instant(expires)},
                "reason": "a preview issues no coupon: the messages show a stand-in code"}

    def _recommendations(self, action: RecommendationAction) -> dict[str, Any]:
        source = self.runner.recommendations
        if source.remote:
            self._fallback(action.on_failure)
            return {"type": "recommendations", "reason": "asks the recommendation service, which a preview does not "
                    f"call; shown as if it failed ({action.on_failure})"}
        try:
            products = fetch_recommendations(source, self.tx, self.run.user_id, action.limit)
        except ActionFailed as exc:
            self._fallback(action.on_failure)
            return {"type": "recommendations", "reason": f"{exc}; takes its fallback ({action.on_failure})",
                    "exit": action.on_failure == "exit"}
        self.run.context["recommendations"] = products
        return {"type": "recommendations", "products": [p.get("listing_id") for p in products],
                "reason": f"{len(products)} listing(s) recommended"}

    def _fallback(self, on_failure: str) -> None:
        if on_failure == "skip_next_send":
            self.run.context["skip_next_send"] = True

    # -- sends -----------------------------------------------------------------------------------------------

    def _send(self, step: str, send: Send, at_us: int) -> dict[str, Any]:
        shown: dict[str, Any] = {"type": "send", "template": send.template, "kind": send.kind,
                                 "plannedChannel": send.channel}
        if self.run.context.pop("skip_next_send", None):
            return {**shown, "skipped": "an earlier action failed: the runner skips this send"}
        made = self.runner.message_for(self.tx, self.run, self.flow, step, send, self.traits, at_us)
        if isinstance(made, str):
            return {**shown, "skipped": made}
        message = made.message
        routable = bool(self.dispatcher.policy.routable(message))
        decision, history = self._decide(made, at_us)
        if routable:
            shown["channelChoice"] = self._channel_choice(made, decision, history)
        Dispatcher._apply(message, decision, at_us)  # the switch onto the message, as the dispatcher does
        shown["decision"] = self._decision(decision)
        booked = decision.action == "defer" and decision.reason != "quiet_hours"  # its best time: checked then
        shown["checks"] = self._checks(made, message.channel, decision.at_us if booked and decision.at_us
                                       else at_us, history)
        goes_us: int | None = at_us if decision.action == "send" else None
        if decision.action == "defer" and decision.at_us is not None:
            # Held (quiet hours, the best time): decided again when it comes due, as the dispatcher does.
            again = Candidate(message, made.traits, made.holdout_pct, release=True)
            release, _ = self._decide(again, decision.at_us)
            shown["whenDue"] = self._decision(release, decision.at_us)
            goes_us = decision.at_us if release.action == "send" else None
        if goes_us is not None:
            self.sent.setdefault((message.user_id, message.channel, message.kind), []).append((goes_us, message.id))
        shown.update(channel=message.channel, switched=decision.route is not None, goes=goes_us is not None,
                     goesAt=format_instant(from_us(goes_us)) if goes_us is not None else None,
                     goesLocal=local_labels(goes_us, self.tz) if goes_us is not None else None,
                     message=_message_json(message))
        if decision.route is not None:
            shown["route"] = {"from": message.data.get("planned_channel"), "to": decision.route.channel,
                              "reason": decision.route.reason, "detail": decision.route.detail}
        if decision.send_time is not None:
            choice = decision.send_time
            shown["sendTime"] = {"at": format_instant(choice.send_at), "source": choice.source,
                                 "reason": choice.reason, "detail": choice.detail,
                                 "local": local_labels(to_us(choice.send_at), self.tz)}
        for extra in ("experiment", "user_context"):
            if extra in message.data:
                shown[extra] = message.data[extra]
        return shown

    def _channel_choice(self, candidate: Candidate, decision: Decision, history: History) -> dict[str, Any]:
        """Why the message stays on its channel or moves (SPEC 4.C), in the words of the switch itself."""
        if decision.route is not None:
            return {"switched": True, "to": decision.route.channel, "detail": decision.route.detail}
        message = candidate.message
        scores = history.channel_scores.get(message.user_id)
        if scores is None:
            return {"switched": False, "to": message.channel,
                    "detail": f"no evidence about this user's channels yet: stays on {message.channel}"}
        kept = route(message.channel, message.kind, scores, self.dispatcher.policy.channel_rules,
                     available=available_channels(candidate.traits))
        return {"switched": False, "to": message.channel, "detail": kept.detail,
                "scores": {c: round(v, 3) for c, v in scores.items()}}

    def _decide(self, candidate: Candidate, at_us: int) -> tuple[Decision, History]:
        """The one send decision at ``at_us``, on the loaded history plus the path's own earlier sends."""
        policy = self.dispatcher.policy
        loaded = load_history(self.tx, [candidate], policy, at_us, models=self.dispatcher.optimizer)
        sent: dict[CapKey, list[Sent]] = {k: list(v) for k, v in loaded.sent.items()}
        for key, entries in self.sent.items():  # the path's own sends, those gone by then
            sent.setdefault(key, []).extend(e for e in entries if e[0] <= at_us)
        history = dataclasses.replace(loaded, sent=sent)
        return decide_many([candidate], history, policy)[0], history

    def _decision(self, decision: Decision, at_us: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"action": decision.action, "reason": decision.reason, "detail": decision.detail}
        if at_us is not None:
            out["decidedAt"] = format_instant(from_us(at_us))
        if decision.at_us is not None:
            out["at"] = format_instant(from_us(decision.at_us))
            out["local"] = local_labels(decision.at_us, self.tz)
        return out

    def _checks(self, candidate: Candidate, channel: str, at_us: int, history: History) -> list[dict[str, Any]]:
        """Each guardrail on the channel the message goes on, in the gate's order, with what it found (the
        decision above is the gate's; this says where each rule stands)."""
        message, traits = candidate.message, candidate.traits
        rules = self.dispatcher.gate.rules
        policy = self.dispatcher.policy
        tz = policy.tz(traits)
        checks: list[dict[str, Any]] = []

        def check(rule: str, passes: bool, detail: str) -> None:
            checks.append({"rule": rule, "passes": passes, "detail": detail})

        if message.expires_us is not None:
            check("expiry", at_us < message.expires_us,
                  f"valid until {format_instant(from_us(message.expires_us))}")
        address = ADDRESS_TRAIT.get(channel)
        if address:
            check("address", bool(traits.get(address)), f"{address} {'known' if traits.get(address) else 'missing'}")
        if message.kind == "transactional":
            check("consent", True, "transactional: consent, holdouts, quiet hours and caps do not apply")
            return checks
        consented = has_consent(traits, channel)
        check("consent", consented, f"{'opted in' if consented else 'no opt-in'} to marketing on {channel}")
        in_global = in_holdout("global", message.user_id, rules.global_control_pct)
        in_flow = in_holdout(message.flow, message.user_id, candidate.holdout_pct)
        check("holdout", not (in_global or in_flow),
              "in the global control group" if in_global else f"in {message.flow}'s holdout "
              f"({candidate.holdout_pct:g} %)" if in_flow else
              f"not held out (global {rules.global_control_pct:g} %, flow {candidate.holdout_pct:g} %)")
        if channel in rules.quiet_hours.channels:
            until = quiet_until(rules.quiet_hours, at_us, tz)
            start, end = rules.quiet_hours.start, rules.quiet_hours.end
            span = f"{start[0]:02d}:{start[1]:02d}–{end[0]:02d}:{end[1]:02d} {tz}"
            check("quiet_hours", until is None, f"quiet hours {span}" + (
                f": ends {format_instant(from_us(until))}" if until is not None else ": outside them"))
        for cap in rules.caps:
            if cap.channel != channel or cap.kind != message.kind:
                continue
            since = window_start(cap, at_us, tz)
            count = sum(1 for sent_us, mid in history.sent.get((message.user_id, channel, message.kind), ())
                        if sent_us >= since and mid != message.id)
            check("frequency_cap", count < cap.limit, f"{cap.describe()}: {count} already")
        return checks


def _message_json(message: Message) -> dict[str, Any]:
    return {"channel": message.channel, "template": message.data.get("template"),
            "language": message.data.get("language"), "title": message.title, "subject": message.subject,
            "body": message.body, "html": message.html, "imageUrl": message.image_url, "variant": message.variant,
            "coupon": message.coupon}
