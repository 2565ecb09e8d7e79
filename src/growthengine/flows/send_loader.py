"""The ``send`` step of a flow from YAML: channel, template, guardrail options and experiment, every problem listed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from growthengine.config.problems import ItemProblems, Problems
from growthengine.config.yaml_lines import Path
from growthengine.flows.model import CHANNELS, Channel, Send
from growthengine.segments.durations import DurationError, parse_duration_us

# A template's channel and the variables it uses, or None when no such template exists.
TemplateInfo = Callable[[str], tuple[str, set[str], set[str]] | None]


def _duration(value: Any, path: Path) -> int:
    try:
        return parse_duration_us(value)
    except DurationError as exc:
        raise ItemProblems([(path, str(exc))]) from None


def load_send(spec: Any, path: Path, provided: set[str], templates: TemplateInfo) -> Send:
    """A send step, checked against the templates and what the flow provides before it; every problem listed."""
    if not isinstance(spec, dict):
        raise ItemProblems([(path, "send is {channel, template, kind, urgency, priority, expires}")])
    problems = Problems()
    for field in sorted(set(map(str, spec)) - {"channel", "template", "kind", "urgency", "priority", "expires",
                                               "best_time", "variants", "experiment"}):
        problems.add((*path, field), f"unknown send field {field!r}")
    channel = spec.get("channel")
    if channel not in CHANNELS:
        problems.add((*path, "channel"), f"unknown channel {channel!r}; channels are {', '.join(CHANNELS)}")
    template = spec.get("template")
    info = templates(str(template)) if isinstance(template, str) else None
    template_variants: set[str] = set()
    if info is None:
        problems.add((*path, "template"), f"unknown template {template!r}")
    else:
        template_channel, variables, template_variants = info
        if channel in CHANNELS and template_channel != channel:
            problems.add((*path, "template"), f"template {template!r} is for {template_channel}, not {channel}")
        missing = sorted(variables - provided)
        if missing:
            hint = " (add an action: {coupon: ...} step before it)" if "coupon" in missing else ""
            problems.add((*path, "template"), f"template {template!r} uses {', '.join(missing)}, which this "
                                              f"flow does not provide{hint}")
    kind = spec.get("kind", "marketing")
    if kind not in ("marketing", "transactional"):
        problems.add((*path, "kind"), "kind is marketing or transactional")
    urgency = spec.get("urgency", "normal")
    if urgency not in ("normal", "high"):
        problems.add((*path, "urgency"), "urgency is normal or high")
    priority = spec.get("priority", 50)
    if isinstance(priority, bool) or not isinstance(priority, int):
        problems.add((*path, "priority"), "priority is a whole number (higher wins a contested slot)")
    expires = problems.check(lambda: _duration(spec["expires"], (*path, "expires"))) \
        if "expires" in spec else None
    best = None
    if "best_time" in spec:
        best_spec = spec["best_time"]
        if isinstance(best_spec, dict):
            best_spec = best_spec.get("within")
        best = problems.check(lambda: _duration(best_spec, (*path, "best_time")))
    variants = spec.get("variants") or []
    if not isinstance(variants, list) or any(not isinstance(v, str) for v in variants) or len(variants) == 1:
        problems.add((*path, "variants"), "variants is a list of two or more of the template's variants")
        variants = []
    unknown = [v for v in variants if v not in template_variants]
    if unknown and info is not None:
        problems.add((*path, "variants"), f"template {template!r} has no variant {unknown[0]!r}; it has "
                                          f"{', '.join(sorted(template_variants))}")
    experiment = problems.check(lambda: _experiment(spec.get("experiment", {}), (*path, "experiment")))
    problems.done()
    assert experiment is not None
    mode, options = experiment
    return Send(channel=cast(Channel, channel), template=str(template), kind=kind, urgency=urgency, priority=priority,
                expires_us=expires, best_within_us=best, variants=tuple(variants), experiment_mode=mode,
                experiment_options=options)

def _experiment(experiment: Any, path: Path) -> tuple[str, tuple[tuple[str, float], ...]]:
    if not isinstance(experiment, dict):
        raise ItemProblems([(path, "experiment is {mode, explore_share, min_sends}")])
    problems = Problems()
    for field in sorted(set(map(str, experiment)) - {"mode", "explore_share", "min_sends"}):
        problems.add((*path, field), f"unknown experiment field {field!r} (fields: mode, explore_share, "
                                     "min_sends)")
    mode = experiment.get("mode", "explore")
    if mode not in ("explore", "thompson"):
        problems.add((*path, "mode"), "mode is explore or thompson")
    options: list[tuple[str, float]] = []
    share = experiment.get("explore_share")
    if share is not None:
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            problems.add((*path, "explore_share"),
                         "explore_share is the share of the audience that explores, above 0 and at most 1")
        else:
            options.append(("explore_share", float(share)))
    min_sends = experiment.get("min_sends")
    if min_sends is not None:
        if isinstance(min_sends, bool) or not isinstance(min_sends, int) or min_sends < 1:
            problems.add((*path, "min_sends"), "min_sends is a whole number of sends, 1 or more")
        else:
            options.append(("min_sends", float(min_sends)))
    problems.done()
    return str(mode), tuple(options)
