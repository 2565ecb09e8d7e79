"""The console's editors on the config API's own functions: a segment, flow or template as YAML text, parsed,
previewed on stored history (the segment preview and the template rendering the API uses) and stored as a
version (``Engine.change_config``). Nothing here decides anything the engine decides elsewhere."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import yaml

from growthengine.clock import to_us
from growthengine.config.errors import ConfigError
from growthengine.config.versions import item, load_merged
from growthengine.content.templates import RenderedMessage, TemplateRegistry
from growthengine.engine import ConfigConflict, Engine
from growthengine.flows.model import Flow
from growthengine.flows.one_off import OneOffRefused, render_for_user
from growthengine.flows.runner import Runner
from growthengine.segments.draft_preview import SegmentPreview, preview_segment
from growthengine.storage.config_store import ConfigKind

DASHBOARD_AUTHOR = "dashboard"
"""``changedBy`` of the versions stored from the dashboard (its session holds no key name)."""
LANGUAGES = ("th", "en")


@dataclass
class Outcome:
    """What an editor's action gave: problems (each with its path), or a result to show."""

    problems: list[dict[str, str]] = field(default_factory=list)
    saved_version: int | None = None


def as_yaml(value: Any) -> str:
    return "" if value is None else yaml.safe_dump(value, allow_unicode=True, sort_keys=False, width=100)


def saved_yaml(engine: Engine, kind: ConfigKind, key: str | None) -> str | None:
    """The saved item as YAML text, ``None`` when there is none."""
    if key is None:
        return None
    found = item(engine.config, kind, key)
    return None if found is None else as_yaml(found)


def parse_body(text: str) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """The editor's YAML (or JSON) as the item's body: a mapping, or the problem with its line."""
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(text)"
        return None, [{"path": where, "message": str(getattr(exc, "problem", None) or exc)}]
    if not isinstance(body, dict):
        return None, [{"path": "(text)", "message": "a mapping of the item's fields, as in the config file"}]
    # As JSON over the API: dates and other YAML-only values become text.
    return orjson.loads(orjson.dumps(body, default=str)), []


def problems_of(exc: ConfigError) -> list[dict[str, str]]:
    return [{"path": issue.path, "message": issue.message} for issue in exc.issues]


def save(engine: Engine, kind: ConfigKind, key: str, body: dict[str, Any]) -> Outcome:
    """``PUT /v1/config/{kind}s/{key}`` from the dashboard."""
    try:
        version = engine.change_config(kind, key, body, DASHBOARD_AUTHOR)
    except ConfigError as exc:
        return Outcome(problems=problems_of(exc))
    except ConfigConflict as exc:
        return Outcome(problems=[{"path": key, "message": str(exc)}])
    return Outcome(saved_version=version.version)


def preview_draft_segment(engine: Engine, key: str, body: dict[str, Any] | None
                          ) -> tuple[SegmentPreview | None, list[dict[str, str]]]:
    """``POST /v1/config/segments/{key}/preview``: the draft (or the saved one) on stored history."""
    if body:
        try:
            with engine.store.read() as tx:
                config = load_merged(tx.conn, engine.settings.config_file, changes=[("segment", key, body)])
        except ConfigError as exc:
            return None, problems_of(exc)
        segments = config.segments
    else:
        segments = engine.segments.segments
        if key not in segments:
            return None, [{"path": key, "message": "no such segment"}]
    with engine.store.read() as tx:
        preview = preview_segment(segments, key, tx, engine.clock, to_us(engine.clock.now()),
                                  engine.settings.business_timezone)
    return preview, []


def check_flow(engine: Engine, key: str, body: dict[str, Any]) -> tuple[Flow | None, list[dict[str, str]]]:
    """The draft flow as publishing it would load it (validated with the whole merged config), storing nothing."""
    try:
        with engine.store.read() as tx:
            config = load_merged(tx.conn, engine.settings.config_file, changes=[("flow", key, body)])
    except ConfigError as exc:
        return None, problems_of(exc)
    return config.flows.get(key), []


class _InLanguage:
    """A template registry that renders in one language whatever the user's (to show both of a template's)."""

    def __init__(self, registry: TemplateRegistry, language: str) -> None:
        self._registry = registry
        self._language = language

    def __contains__(self, key: object) -> bool:
        return key in self._registry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)

    def render(self, key: str, language: str | None, context: Any, **options: Any) -> RenderedMessage:
        return self._registry.render(key, self._language, context, **options)


@dataclass
class TemplatePreview:
    channel: str = ""
    user_language: str = ""
    rendered: dict[str, RenderedMessage] = field(default_factory=dict)
    problems: list[dict[str, str]] = field(default_factory=list)


def preview_template(engine: Engine, key: str, body: dict[str, Any] | None, user_id: str,
                     values: dict[str, Any] | None) -> TemplatePreview:
    """``POST /v1/config/templates/{key}/preview`` for the draft (or the saved template), in Thai and English: the
    API's rendering for the user, once in each language."""
    registry = engine.flows.runner.templates
    if body:
        try:
            with engine.store.read() as tx:
                config = load_merged(tx.conn, engine.settings.config_file, changes=[("template", key, body)])
        except ConfigError as exc:
            return TemplatePreview(problems=problems_of(exc))
        if config.templates is not None:
            registry = config.templates
    out = TemplatePreview()
    now_us = to_us(engine.clock.now())
    try:
        with engine.store.read() as tx:
            own = render_for_user(tx, _runner_with(engine.flows.runner, registry), key, user_id, now_us, values)
            out.channel, out.user_language = own.channel, own.rendered.language
            for language in LANGUAGES:
                runner = _runner_with(engine.flows.runner, cast(TemplateRegistry, _InLanguage(registry, language)))
                out.rendered[language] = render_for_user(tx, runner, key, user_id, now_us, values).rendered
    except OneOffRefused as exc:
        out.problems.append({"path": key, "message": str(exc)})
    return out


def _runner_with(runner: Runner, templates: TemplateRegistry) -> Runner:
    """The engine's runner reading other templates (a draft's, or one language's), for rendering only."""
    if templates is runner.templates:
        return runner
    view = copy.copy(runner)
    view.templates = templates
    return view
