"""Flows from YAML: checked on load against the segments, the templates and the channels."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import orjson

from growthengine.config.errors import ConfigIssue
from growthengine.config.yaml_lines import Path, format_path, line_of
from growthengine.flows.model import (
    CHANNELS,
    Branch,
    BranchCondition,
    CouponAction,
    EventTrigger,
    ExitRule,
    Flow,
    RecommendationAction,
    Schedule,
    SegmentEntered,
    Send,
    Step,
    Trigger,
    Wait,
)
from growthengine.segments.durations import DurationError, parse_duration_us
from growthengine.segments.loader import SegmentLoader

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_LOCAL_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_OFFSET = re.compile(r"^T\s*\+\s*(\S+)$")

# What the engine puts in every message's template context (see flows/context.py).
BASE_CONTEXT = {
    "name", "language", "timezone", "email", "province", "user_id", "now", "site_url", "unsubscribe_url", "flow",
    "product", "title", "image_url", "stock", "price", "listing_id", "new_price", "old_price", "category",
    "trigger", "entity", "guide_url", "listings", "from_price",
}

# A template's channel and the variables it uses, or None when no such template exists.
TemplateInfo = Callable[[str], tuple[str, set[str], set[str]] | None]


class _Invalid(Exception):
    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class FlowLoader:
    def __init__(self, file: str, lines: dict[Path, int], segments: set[str], templates: TemplateInfo) -> None:
        self.file = file
        self.lines = lines
        self.segments = segments
        self.templates = templates
        self.issues: list[ConfigIssue] = []
        self._segment_helper = SegmentLoader(file, lines)

    def _issue(self, path: Path, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, format_path(path), message, line_of(self.lines, path)))

    def load(self, block: Any, base: Path = ("flows",)) -> dict[str, Flow]:
        flows: dict[str, Flow] = {}
        if block is None:
            return flows
        if not isinstance(block, dict):
            self._issue(base, "must be a mapping of flow key to definition")
            return flows
        for key, spec in block.items():
            if spec is None:
                continue
            try:
                flows[str(key)] = self._flow(str(key), spec, (*base, key))
            except _Invalid as exc:
                self._issue(exc.path, exc.message)
        return flows

    def _flow(self, key: str, spec: Any, path: Path) -> Flow:
        if not isinstance(spec, dict):
            raise _Invalid(path, "a flow is a mapping with trigger and steps")
        allowed = {"name", "description", "trigger", "steps", "exit_on", "reentry", "holdout", "enabled",
                   "enroll_existing"}
        extra = sorted(set(spec) - allowed)
        if extra:
            raise _Invalid((*path, extra[0]), f"unknown field {extra[0]!r}; a flow has {', '.join(sorted(allowed))}")
        trigger = self._trigger(spec.get("trigger"), (*path, "trigger"))
        steps_spec = spec.get("steps")
        if not isinstance(steps_spec, list) or not steps_spec:
            raise _Invalid((*path, "steps"), "steps is a non-empty list")
        provided = set(BASE_CONTEXT)
        steps = self._steps(steps_spec, (*path, "steps"), provided, set())
        reentry = spec.get("reentry", "after_exit")
        if reentry not in ("never", "after_exit"):
            raise _Invalid((*path, "reentry"), "reentry is never or after_exit")
        holdout = spec.get("holdout", 0)
        if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 <= holdout < 100:
            raise _Invalid((*path, "holdout"), "holdout is a percentage from 0 to 99, e.g. 10")
        enroll_existing = spec.get("enroll_existing", False)
        if not isinstance(enroll_existing, bool):
            raise _Invalid((*path, "enroll_existing"), "enroll_existing is true or false")
        if enroll_existing and not isinstance(trigger, SegmentEntered):
            raise _Invalid((*path, "enroll_existing"), "enroll_existing applies only to a segment_entered trigger")
        exits = tuple(self._exit(e, (*path, "exit_on", i)) for i, e in enumerate(spec.get("exit_on") or []))
        canonical = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS, default=str)
        return Flow(key=key, name=str(spec.get("name", key)), trigger=trigger, steps=steps, exit_on=exits,
                    reentry=reentry, enroll_existing=enroll_existing, holdout_pct=float(holdout),
                    description=str(spec.get("description", "")),
                    enabled=bool(spec.get("enabled", True)),
                    version=hashlib.sha1(canonical, usedforsecurity=False).hexdigest()[:12], source=spec)

    def _duration(self, value: Any, path: Path) -> int:
        try:
            return parse_duration_us(value)
        except DurationError as exc:
            raise _Invalid(path, str(exc)) from None

    def _trigger(self, spec: Any, path: Path) -> Trigger:
        if not isinstance(spec, dict):
            raise _Invalid(path, "trigger is segment_entered, event or schedule")
        if "segment_entered" in spec:
            segment = spec["segment_entered"]
            if segment not in self.segments:
                raise _Invalid((*path, "segment_entered"), f"unknown segment {segment!r}; segments are "
                                                           f"{', '.join(sorted(self.segments))}")
            return SegmentEntered(str(segment))
        if "schedule" in spec:
            return self._schedule(spec["schedule"], (*path, "schedule"))
        if "event" not in spec:
            raise _Invalid(path, "trigger needs one of segment_entered, event, schedule")
        allowed = {"event", "where", "derive", "per", "audience", "unless"}
        extra = sorted(set(spec) - allowed)
        if extra:
            raise _Invalid((*path, extra[0]), f"unknown field {extra[0]!r} in an event trigger")
        derive = spec.get("derive") or {}
        if not isinstance(derive, dict) or not all(isinstance(v, str) for v in derive.values()):
            raise _Invalid((*path, "derive"), "derive maps a name to an expression, e.g. "
                                              "drop_pct: (old_price - new_price) / old_price * 100")
        where = self._segment_where(spec.get("where"), (*path, "where"), str(spec["event"]), set(derive))
        audience = spec.get("audience")
        if audience not in (None, "favorited"):
            raise _Invalid((*path, "audience"), "audience is 'favorited' (everyone whose favorites hold it)")
        per = spec.get("per")
        if audience and not per:
            raise _Invalid((*path, "per"), "an audience needs per: the entity property, e.g. listing_id")
        unless = spec.get("unless")
        unless_event, unless_within = None, None
        if unless is not None:
            if not isinstance(unless, dict) or not isinstance(unless.get("event"), str) or "within" not in unless:
                raise _Invalid((*path, "unless"), "unless is {event: NAME, within: DURATION}")
            unless_event = unless["event"]
            unless_within = self._duration(unless["within"], (*path, "unless", "within"))
        return EventTrigger(event=str(spec["event"]), where=where, derive=tuple(derive.items()),
                            per=per, audience=audience, unless_event=unless_event, unless_within_us=unless_within)

    def _segment_where(self, spec: Any, path: Path, event: str, derived: set[str]) -> Any:
        from growthengine.segments import loader as segment_loader

        try:
            return self._segment_helper._where(event if not derived else "", spec, path)
        except segment_loader._Invalid as exc:
            raise _Invalid(exc.path, exc.message) from None

    def _schedule(self, spec: Any, path: Path) -> Schedule:
        if not isinstance(spec, dict) or not isinstance(spec.get("every"), str):
            raise _Invalid(path, "schedule is {every: 'monday 09:00', segment: KEY (optional)}")
        parts = spec["every"].strip().lower().split()
        if len(parts) != 2 or parts[0] not in WEEKDAYS or not _LOCAL_TIME.match(parts[1]):
            raise _Invalid((*path, "every"), "every is a weekday and a local time, e.g. 'monday 09:00'")
        segment = spec.get("segment")
        if segment is not None and segment not in self.segments:
            raise _Invalid((*path, "segment"), f"unknown segment {segment!r}")
        hour, minute = (int(x) for x in parts[1].split(":"))
        return Schedule(segment=segment, weekday=WEEKDAYS.index(parts[0]), hour=hour, minute=minute)

    def _steps(self, specs: list[Any], path: Path, provided: set[str], names: set[str]) -> tuple[Step, ...]:
        steps: list[Step] = []
        for index, spec in enumerate(specs):
            spath = (*path, index)
            if not isinstance(spec, dict):
                raise _Invalid(spath, "a step is a mapping: wait, send, action or branch")
            kinds = [k for k in ("wait", "send", "action", "branch") if k in spec]
            extra = sorted(set(spec) - {"wait", "send", "action", "branch", "name"})
            if extra:
                raise _Invalid((*spath, extra[0]), f"unknown step field {extra[0]!r}")
            if len(kinds) != 1:
                raise _Invalid(spath, "a step is exactly one of wait, send, action, branch")
            kind = kinds[0]
            name = str(spec.get("name") or f"{kind}_{len(names) + 1}")
            if name in names:
                raise _Invalid((*spath, "name"), f"step name {name!r} is used twice")
            names.add(name)
            body: Any
            if kind == "wait":
                body = self._wait(spec["wait"], (*spath, "wait"))
            elif kind == "send":
                body = self._send(spec["send"], (*spath, "send"), provided)
            elif kind == "action":
                body = self._action(spec["action"], (*spath, "action"))
                provided.update({"coupon"} if isinstance(body, CouponAction) else {"recommendations", "products"})
            else:
                body = self._branch(spec["branch"], (*spath, "branch"), provided, names)
            steps.append(Step(name, body))
        return tuple(steps)

    def _wait(self, spec: Any, path: Path) -> Wait:
        if not isinstance(spec, dict) or len(spec) != 1:
            raise _Invalid(path, "wait is {for: 3d}, {until: 'T+24h'} or {until_local: '09:00'}")
        (key, value), = spec.items()
        if key == "for":
            return Wait(for_us=self._duration(value, (*path, "for")))
        if key == "until":
            match = _OFFSET.match(str(value))
            if not match:
                raise _Invalid((*path, "until"), "until is T+DURATION (T is when the trigger happened), e.g. T+24h")
            return Wait(until_offset_us=self._duration(match.group(1), (*path, "until")))
        if key == "until_local":
            match = _LOCAL_TIME.match(str(value))
            if not match:
                raise _Invalid((*path, "until_local"), "until_local is a local time, e.g. '09:00'")
            return Wait(until_local=(int(match.group(1)), int(match.group(2))))
        raise _Invalid((*path, key), f"unknown wait {key!r}; use for, until or until_local")

    def _send(self, spec: Any, path: Path, provided: set[str]) -> Send:
        if not isinstance(spec, dict):
            raise _Invalid(path, "send is {channel, template, kind, urgency, priority, expires}")
        extra = sorted(set(spec) - {"channel", "template", "kind", "urgency", "priority", "expires", "best_time",
                                    "variants", "experiment"})
        if extra:
            raise _Invalid((*path, extra[0]), f"unknown send field {extra[0]!r}")
        channel = spec.get("channel")
        if channel not in CHANNELS:
            raise _Invalid((*path, "channel"), f"unknown channel {channel!r}; channels are {', '.join(CHANNELS)}")
        template = spec.get("template")
        info = self.templates(str(template)) if isinstance(template, str) else None
        if info is None:
            raise _Invalid((*path, "template"), f"unknown template {template!r}")
        template_channel, variables, template_variants = info
        if template_channel != channel:
            raise _Invalid((*path, "template"), f"template {template!r} is for {template_channel}, not {channel}")
        missing = sorted(variables - provided)
        if missing:
            hint = " (add an action: {coupon: ...} step before it)" if "coupon" in missing else ""
            raise _Invalid((*path, "template"),
                           f"template {template!r} uses {', '.join(missing)}, which this flow does not provide{hint}")
        kind = spec.get("kind", "marketing")
        if kind not in ("marketing", "transactional"):
            raise _Invalid((*path, "kind"), "kind is marketing or transactional")
        urgency = spec.get("urgency", "normal")
        if urgency not in ("normal", "high"):
            raise _Invalid((*path, "urgency"), "urgency is normal or high")
        priority = spec.get("priority", 50)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise _Invalid((*path, "priority"), "priority is a whole number (higher wins a contested slot)")
        expires = self._duration(spec["expires"], (*path, "expires")) if "expires" in spec else None
        best = None
        if "best_time" in spec:
            best_spec = spec["best_time"]
            if isinstance(best_spec, dict):
                best_spec = best_spec.get("within")
            best = self._duration(best_spec, (*path, "best_time"))
        variants = spec.get("variants") or []
        if not isinstance(variants, list) or any(not isinstance(v, str) for v in variants) or len(variants) == 1:
            raise _Invalid((*path, "variants"), "variants is a list of two or more of the template's variants")
        unknown = [v for v in variants if v not in template_variants]
        if unknown:
            raise _Invalid((*path, "variants"), f"template {template!r} has no variant {unknown[0]!r}; it has "
                                                f"{', '.join(sorted(template_variants))}")
        experiment = spec.get("experiment", {})
        if not isinstance(experiment, dict):
            raise _Invalid((*path, "experiment"), "experiment is {mode, explore_share, min_sends}")
        unknown_keys = sorted(set(experiment) - {"mode", "explore_share", "min_sends"})
        if unknown_keys:
            raise _Invalid((*path, "experiment", unknown_keys[0]),
                           f"unknown experiment field {unknown_keys[0]!r} (fields: mode, explore_share, min_sends)")
        mode = experiment.get("mode", "explore")
        if mode not in ("explore", "thompson"):
            raise _Invalid((*path, "experiment", "mode"), "mode is explore or thompson")
        options: list[tuple[str, float]] = []
        share = experiment.get("explore_share")
        if share is not None:
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
                raise _Invalid((*path, "experiment", "explore_share"),
                               "explore_share is the share of the audience that explores, above 0 and at most 1")
            options.append(("explore_share", float(share)))
        min_sends = experiment.get("min_sends")
        if min_sends is not None:
            if isinstance(min_sends, bool) or not isinstance(min_sends, int) or min_sends < 1:
                raise _Invalid((*path, "experiment", "min_sends"), "min_sends is a whole number of sends, 1 or more")
            options.append(("min_sends", float(min_sends)))
        return Send(channel=channel, template=str(template), kind=kind, urgency=urgency, priority=priority,
                    expires_us=expires, best_within_us=best, variants=tuple(variants), experiment_mode=mode,
                    experiment_options=tuple(options))

    def _action(self, spec: Any, path: Path) -> CouponAction | RecommendationAction:
        if not isinstance(spec, dict):
            raise _Invalid(path, "action is {coupon: {...}} or {recommendations: {...}}")
        on_failure = spec.get("on_failure", None)
        if on_failure not in (None, "continue", "skip_next_send", "exit"):
            raise _Invalid((*path, "on_failure"), "on_failure is continue, skip_next_send or exit")
        if "coupon" in spec:
            body = spec["coupon"]
            if not isinstance(body, dict) or body.get("type") not in ("percent", "amount"):
                raise _Invalid((*path, "coupon"), "coupon is {type: percent|amount, value: N, expiry: 24h}")
            value = body.get("value")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise _Invalid((*path, "coupon", "value"), "value is a positive number")
            self._duration(body.get("expiry", "24h"), (*path, "coupon", "expiry"))
            return CouponAction(type=body["type"], value=float(value), expiry=str(body.get("expiry", "24h")),
                                on_failure=on_failure or "continue")
        if "recommendations" in spec:
            body = spec["recommendations"] or {}
            limit = body.get("limit", 6) if isinstance(body, dict) else 6
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
                raise _Invalid((*path, "recommendations", "limit"), "limit is 1 to 50")
            return RecommendationAction(limit=limit, on_failure=on_failure or "skip_next_send")
        raise _Invalid(path, "unknown action; actions are coupon and recommendations")

    def _branch(self, spec: Any, path: Path, provided: set[str], names: set[str]) -> Branch:
        if not isinstance(spec, dict) or not isinstance(spec.get("if"), dict):
            raise _Invalid(path, "branch is {if: {converted|in_segment|event_since_entry: ...}, then: [], else: []}")
        cond = spec["if"]
        if len(cond) != 1 or next(iter(cond)) not in ("converted", "in_segment", "event_since_entry"):
            raise _Invalid((*path, "if"), "if is one of converted: true, in_segment: KEY, event_since_entry: NAME")
        if "in_segment" in cond and cond["in_segment"] not in self.segments:
            raise _Invalid((*path, "if", "in_segment"), f"unknown segment {cond['in_segment']!r}")
        condition = BranchCondition(converted=cond.get("converted"), in_segment=cond.get("in_segment"),
                                    event_since_entry=cond.get("event_since_entry"))
        then = self._steps(spec.get("then") or [], (*path, "then"), set(provided), names)
        otherwise = self._steps(spec.get("else") or [], (*path, "else"), set(provided), names)
        return Branch(condition, then, otherwise)

    def _exit(self, spec: Any, path: Path) -> ExitRule:
        if not isinstance(spec, dict) or not isinstance(spec.get("event"), str):
            raise _Invalid(path, "an exit is {event: NAME, where: {property: value}}")
        where = spec.get("where") or {}
        if not isinstance(where, dict):
            raise _Invalid((*path, "where"), "where maps a property to a value or {contains: value}")
        rules = []
        for prop, cond in where.items():
            if isinstance(cond, dict):
                if len(cond) != 1 or next(iter(cond)) not in ("eq", "contains"):
                    raise _Invalid((*path, "where", prop), "use a value, {eq: value} or {contains: value}")
                op, value = next(iter(cond.items()))
            else:
                op, value = "eq", cond
            rules.append((str(prop), op, value))
        return ExitRule(event=spec["event"], where=tuple(rules))
