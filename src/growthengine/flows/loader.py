"""Flows from YAML: checked on load against the segments, the templates and the channels."""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any

import orjson

from growthengine.config.errors import ConfigIssue
from growthengine.config.problems import ItemProblems, Problems, item_issues
from growthengine.config.yaml_lines import Path, format_path, line_of
from growthengine.flows.model import (
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
from growthengine.flows.send_loader import TemplateInfo, load_send
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


class _Invalid(ItemProblems):
    """One problem, where nothing more of the part can be checked."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__([(path, message)])


__all__ = ["BASE_CONTEXT", "FlowLoader", "TemplateInfo"]


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
            except ItemProblems as exc:  # every problem of the flow, not only the first, in line order
                found = [(line_of(self.lines, where) or 0, i, where, message)
                         for i, (where, message) in enumerate(item_issues(exc.problems))]
                for _, _, where, message in sorted(found):
                    self._issue(where, message)
        return flows

    def _flow(self, key: str, spec: Any, path: Path) -> Flow:
        if not isinstance(spec, dict):
            raise _Invalid(path, "a flow is a mapping with trigger and steps")
        problems = Problems()
        allowed = {"name", "description", "trigger", "steps", "exit_on", "reentry", "holdout", "enabled",
                   "enroll_existing"}
        for field in sorted(set(map(str, spec)) - allowed):
            problems.add((*path, field), f"unknown field {field!r}; a flow has {', '.join(sorted(allowed))}")
        trigger = problems.check(lambda: self._trigger(spec.get("trigger"), (*path, "trigger")))
        steps_spec = spec.get("steps")
        steps: tuple[Step, ...] | None = None
        if not isinstance(steps_spec, list) or not steps_spec:
            problems.add((*path, "steps"), "steps is a non-empty list")
        else:
            steps = problems.check(lambda: self._steps(steps_spec, (*path, "steps"), set(BASE_CONTEXT), set()))
        reentry = spec.get("reentry", "after_exit")
        if reentry not in ("never", "after_exit"):
            problems.add((*path, "reentry"), "reentry is never or after_exit")
        holdout = spec.get("holdout", 0)
        if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 <= holdout < 100:
            problems.add((*path, "holdout"), "holdout is a percentage from 0 to 99, e.g. 10")
        enroll_existing = spec.get("enroll_existing", False)
        if not isinstance(enroll_existing, bool):
            problems.add((*path, "enroll_existing"), "enroll_existing is true or false")
        elif enroll_existing and trigger is not None and not isinstance(trigger, SegmentEntered):
            problems.add((*path, "enroll_existing"), "enroll_existing applies only to a segment_entered trigger")
        exit_specs = spec.get("exit_on") or []
        exits: list[ExitRule] = []
        if not isinstance(exit_specs, list):
            problems.add((*path, "exit_on"), "exit_on is a list of exits, e.g. [{event: purchase}]")
        else:
            for i, exit_spec in enumerate(exit_specs):
                rule = problems.check(functools.partial(self._exit, exit_spec, (*path, "exit_on", i)))
                if rule is not None:
                    exits.append(rule)
        problems.done()
        assert trigger is not None and steps is not None
        canonical = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS, default=str)
        return Flow(key=key, name=str(spec.get("name", key)), trigger=trigger, steps=steps, exit_on=tuple(exits),
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
        problems = Problems()
        allowed = {"event", "where", "derive", "per", "audience", "unless"}
        for field in sorted(set(map(str, spec)) - allowed):
            problems.add((*path, field), f"unknown field {field!r} in an event trigger")
        derive = spec.get("derive") or {}
        if not isinstance(derive, dict) or not all(isinstance(v, str) for v in derive.values()):
            problems.add((*path, "derive"), "derive maps a name to an expression, e.g. "
                                            "drop_pct: (old_price - new_price) / old_price * 100")
            derive = {}
        where = problems.check(lambda: self._segment_where(spec.get("where"), (*path, "where"), str(spec["event"]),
                                                           set(derive)))
        audience = spec.get("audience")
        if audience not in (None, "favorited"):
            problems.add((*path, "audience"), "audience is 'favorited' (everyone whose favorites hold it)")
        per = spec.get("per")
        if audience and not per:
            problems.add((*path, "per"), "an audience needs per: the entity property, e.g. listing_id")
        unless = spec.get("unless")
        unless_event, unless_within = None, None
        if unless is not None:
            if not isinstance(unless, dict) or not isinstance(unless.get("event"), str) or "within" not in unless:
                problems.add((*path, "unless"), "unless is {event: NAME, within: DURATION}")
            else:
                unless_event = unless["event"]
                unless_within = problems.check(lambda: self._duration(unless["within"], (*path, "unless", "within")))
        problems.done()
        return EventTrigger(event=str(spec["event"]), where=where or (), derive=tuple(derive.items()),
                            per=per, audience=audience, unless_event=unless_event, unless_within_us=unless_within)

    def _segment_where(self, spec: Any, path: Path, event: str, derived: set[str]) -> Any:
        from growthengine.segments import loader as segment_loader

        try:
            return self._segment_helper._where(event if not derived else "", spec, path)
        except segment_loader._Invalid as exc:
            raise ItemProblems(exc.problems) from None

    def _schedule(self, spec: Any, path: Path) -> Schedule:
        if not isinstance(spec, dict) or not isinstance(spec.get("every"), str):
            raise _Invalid(path, "schedule is {every: 'monday 09:00', segment: KEY (optional)}")
        problems = Problems()
        parts = spec["every"].strip().lower().split()
        if len(parts) != 2 or parts[0] not in WEEKDAYS or not _LOCAL_TIME.match(parts[1]):
            problems.add((*path, "every"), "every is a weekday and a local time, e.g. 'monday 09:00'")
        segment = spec.get("segment")
        if segment is not None and segment not in self.segments:
            problems.add((*path, "segment"), f"unknown segment {segment!r}")
        problems.done()
        hour, minute = (int(x) for x in parts[1].split(":"))
        return Schedule(segment=segment, weekday=WEEKDAYS.index(parts[0]), hour=hour, minute=minute)

    def _steps(self, specs: list[Any], path: Path, provided: set[str], names: set[str]) -> tuple[Step, ...]:
        steps: list[Step] = []
        problems = Problems()
        for index, spec in enumerate(specs):  # every bad step, not only the first
            step = problems.check(functools.partial(self._step, spec, (*path, index), provided, names))
            if step is not None:
                steps.append(step)
        problems.done()
        return tuple(steps)

    def _step(self, spec: Any, spath: Path, provided: set[str], names: set[str]) -> Step:
        if not isinstance(spec, dict):
            raise _Invalid(spath, "a step is a mapping: wait, send, action or branch")
        problems = Problems()
        kinds = [k for k in ("wait", "send", "action", "branch") if k in spec]
        for field in sorted(set(map(str, spec)) - {"wait", "send", "action", "branch", "name"}):
            hint = "" if kinds else "; a step is one of wait, send, action, branch"
            problems.add((*spath, field), f"unknown step field {field!r}{hint}")
        if not kinds and problems.found:
            problems.done()  # the unknown fields say it
        if len(kinds) != 1:
            raise problems.refuse(spath, "a step is exactly one of wait, send, action, branch")
        kind = kinds[0]
        name = str(spec.get("name") or f"{kind}_{len(names) + 1}")
        if name in names:
            problems.add((*spath, "name"), f"step name {name!r} is used twice")
        names.add(name)
        body: Any
        if kind == "wait":
            body = problems.check(lambda: self._wait(spec["wait"], (*spath, "wait")))
        elif kind == "send":
            body = problems.check(lambda: self._send(spec["send"], (*spath, "send"), provided))
        elif kind == "action":
            body = problems.check(lambda: self._action(spec["action"], (*spath, "action")))
            # What the action would provide, even when it is refused (no second problem for a later send).
            provided.update({"coupon"} if isinstance(body, CouponAction) or (
                body is None and isinstance(spec["action"], dict) and "coupon" in spec["action"])
                else {"recommendations", "products"})
        else:
            body = problems.check(lambda: self._branch(spec["branch"], (*spath, "branch"), provided, names))
        problems.done()
        return Step(name, body)

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
        return load_send(spec, path, provided, self.templates)

    def _action(self, spec: Any, path: Path) -> CouponAction | RecommendationAction:
        if not isinstance(spec, dict):
            raise _Invalid(path, "action is {coupon: {...}} or {recommendations: {...}}")
        problems = Problems()
        on_failure = spec.get("on_failure", None)
        if on_failure not in (None, "continue", "skip_next_send", "exit"):
            problems.add((*path, "on_failure"), "on_failure is continue, skip_next_send or exit")
        if "coupon" in spec:
            body = spec["coupon"]
            if not isinstance(body, dict):
                raise problems.refuse((*path, "coupon"), "coupon is {type: percent|amount, value: N, expiry: 24h}")
            if body.get("type") not in ("percent", "amount"):
                problems.add((*path, "coupon", "type"), "type is percent or amount")
            value = body.get("value")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                problems.add((*path, "coupon", "value"), "value is a positive number")
            problems.check(lambda: self._duration(body.get("expiry", "24h"), (*path, "coupon", "expiry")))
            problems.done()
            assert isinstance(value, (int, float))
            return CouponAction(type=body["type"], value=float(value), expiry=str(body.get("expiry", "24h")),
                                on_failure=on_failure or "continue")
        if "recommendations" in spec:
            body = spec["recommendations"] or {}
            limit = body.get("limit", 6) if isinstance(body, dict) else 6
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
                problems.add((*path, "recommendations", "limit"), "limit is 1 to 50")
            problems.done()
            return RecommendationAction(limit=limit, on_failure=on_failure or "skip_next_send")
        raise problems.refuse(path, "unknown action; actions are coupon and recommendations")

    def _branch(self, spec: Any, path: Path, provided: set[str], names: set[str]) -> Branch:
        if not isinstance(spec, dict) or not isinstance(spec.get("if"), dict):
            raise _Invalid(path, "branch is {if: {converted|in_segment|event_since_entry: ...}, then: [], else: []}")
        problems = Problems()
        cond = spec["if"]
        if len(cond) != 1 or next(iter(cond)) not in ("converted", "in_segment", "event_since_entry"):
            problems.add((*path, "if"), "if is one of converted: true, in_segment: KEY, event_since_entry: NAME")
        elif "in_segment" in cond and cond["in_segment"] not in self.segments:
            problems.add((*path, "if", "in_segment"), f"unknown segment {cond['in_segment']!r}")
        condition = BranchCondition(converted=cond.get("converted"), in_segment=cond.get("in_segment"),
                                    event_since_entry=cond.get("event_since_entry"))
        arms: dict[str, tuple[Step, ...]] = {}
        for arm in ("then", "else"):
            arm_spec = spec.get(arm) or []
            if not isinstance(arm_spec, list):
                problems.add((*path, arm), f"{arm} is a list of steps")
                continue
            steps = problems.check(functools.partial(self._steps, arm_spec, (*path, arm), set(provided), names))
            if steps is not None:
                arms[arm] = steps
        problems.done()
        return Branch(condition, arms["then"], arms["else"])

    def _exit(self, spec: Any, path: Path) -> ExitRule:
        if not isinstance(spec, dict) or not isinstance(spec.get("event"), str):
            raise _Invalid(path, "an exit is {event: NAME, where: {property: value}}")
        where = spec.get("where") or {}
        if not isinstance(where, dict):
            raise _Invalid((*path, "where"), "where maps a property to a value or {contains: value}")
        problems = Problems()
        rules = []
        for prop, cond in where.items():
            if isinstance(cond, dict):
                if len(cond) != 1 or next(iter(cond)) not in ("eq", "contains"):
                    problems.add((*path, "where", prop), "use a value, {eq: value} or {contains: value}")
                    continue
                op, value = next(iter(cond.items()))
            else:
                op, value = "eq", cond
            rules.append((str(prop), op, value))
        problems.done()
        return ExitRule(event=spec["event"], where=tuple(rules))
