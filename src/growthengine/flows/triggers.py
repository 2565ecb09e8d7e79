"""Which events and segment entries start which runs, for whom, tied to which entity."""

from __future__ import annotations

import functools
import logging
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from growthengine.domain.events import Event
from growthengine.flows.model import EventTrigger, ExitRule, Flow
from growthengine.segments.feeds import entity_ids, matches
from growthengine.storage.run_store import Run

log = logging.getLogger(__name__)

_expressions = SandboxedEnvironment()


@functools.lru_cache(maxsize=1024)
def _compiled(expression: str) -> Any:
    """A derived value's expression, compiled once (Jinja compiles it anew at each call: 3 % of a worker's time
    when every price change of a batch asked for it)."""
    return _expressions.compile_expression(expression)


def derived(trigger: EventTrigger, properties: dict[str, Any]) -> dict[str, Any] | None:
    """The event's properties plus the trigger's derived values; None if one cannot be computed."""
    values = dict(properties)
    for name, expression in trigger.derive:
        try:
            value = _compiled(expression)(**properties)
        except Exception:
            return None
        # Binary floating point would make a drop from 333 to 299.70 "10.000000000000004 %": rounded to a
        # billionth, a threshold compares as a person reads it.
        values[name] = round(value, 9) if isinstance(value, float) else value
    return values


def event_matches(trigger: EventTrigger, event: Event) -> dict[str, Any] | None:
    """The values of an event that fires ``trigger``, or None."""
    if event.name != trigger.event:
        return None
    values = derived(trigger, event.properties)
    if values is None or not matches(values, trigger.where):
        return None
    return values


def trigger_entity(trigger: EventTrigger, values: dict[str, Any]) -> str:
    if trigger.per is None:
        return ""
    ids = entity_ids(values, trigger.per)
    return ids[0] if ids else ""


def exit_matches(rule: ExitRule, event: Event, run: Run) -> bool:
    """Whether ``event`` ends ``run`` by this rule; ``{{ entity }}`` stands for the run's entity."""
    if event.name != rule.event or event.user_id != run.user_id:
        return False
    for prop, op, expected in rule.where:
        if isinstance(expected, str) and expected.replace(" ", "") == "{{entity}}":
            expected = run.entity
        actual = event.properties.get(prop)
        if op == "contains":
            if not isinstance(actual, list) or str(expected) not in [str(a) for a in actual]:
                return False
        elif str(actual) != str(expected):
            return False
    return True


def exits_for(flow: Flow) -> tuple[ExitRule, ...]:
    """The flow's exit rules, plus the ``unless`` event of an "A and no B within T" trigger."""
    rules = flow.exit_on
    trigger = flow.trigger
    if isinstance(trigger, EventTrigger) and trigger.unless_event:
        rules = (*rules, ExitRule(event=trigger.unless_event))
    return rules
