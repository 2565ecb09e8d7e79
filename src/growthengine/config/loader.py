"""The engine's config: the shipped defaults, overlaid by a marketer's file, validated as a whole."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from growthengine.config.errors import ConfigError, ConfigIssue
from growthengine.config.template_merge import merge_templates
from growthengine.config.yaml_lines import load_with_lines
from growthengine.content.templates import TemplateNotFound, TemplateRegistry, load_default_templates
from growthengine.flows.loader import FlowLoader, TemplateInfo
from growthengine.flows.model import Flow
from growthengine.segments.loader import SegmentLoader
from growthengine.segments.model import Segment

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
_TOP_LEVEL = {"segments", "flows", "settings", "templates", "campaigns"}


@dataclass
class EngineConfig:
    segments: dict[str, Segment] = field(default_factory=dict)
    flows: dict[str, Flow] = field(default_factory=dict)
    templates: TemplateRegistry | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def template_info(registry: TemplateRegistry) -> TemplateInfo:
    """What flow validation needs to know of a template: its channel and the variables it requires."""

    def info(key: str) -> tuple[str, set[str], set[str]] | None:
        try:
            template = registry.get(key)
        except TemplateNotFound:
            return None
        return str(template.channel), set(template.required_variables), set(template.variants)

    return info


Lines = dict[tuple[str | int, ...], int]


def _read(path: Path) -> tuple[dict[str, Any], Lines, list[ConfigIssue]]:
    """The document, its lines, and its unknown sections (left out of the document, so the rest can be checked)."""
    if path == DEFAULT_CONFIG:
        data, lines, unknown = _read_default()
        return copy.deepcopy(data), lines, list(unknown)
    return _read_file(path)


def read_document(path: Path) -> tuple[dict[str, Any], Lines]:
    """One config document and the line of each path in it; raises :class:`ConfigError`."""
    data, lines, unknown = _read(path)
    if unknown:
        raise ConfigError(unknown)
    return data, lines


@functools.lru_cache(maxsize=1)
def _read_default() -> tuple[dict[str, Any], Lines, list[ConfigIssue]]:
    """The shipped defaults are parsed once per process."""
    return _read_file(DEFAULT_CONFIG)


def _read_file(path: Path) -> tuple[dict[str, Any], Lines, list[ConfigIssue]]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(name, "", f"cannot read the file: {exc.strerror}")]) from None
    try:
        data, lines = load_with_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(name, "", f"not valid YAML: {problem}", line)]) from None
    if data is None:
        return {}, lines, []
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(name, "", "the top level must be a mapping (segments:, flows:, ...)", 1)])
    unknown = sorted(set(map(str, data)) - _TOP_LEVEL)
    sections = ", ".join(sorted(_TOP_LEVEL))
    issues = [ConfigIssue(name, section, f"unknown section; sections are {sections}", lines.get((section,)))
              for section in unknown]
    return {k: v for k, v in data.items() if str(k) in _TOP_LEVEL}, lines, issues


STORED = "stored config"
"""The name problems of the config stored over the API are reported under."""


def load_config(path: Path | None = None, *, with_defaults: bool = True,
                templates: TemplateRegistry | None = None, overrides: dict[str, Any] | None = None) -> EngineConfig:
    """Load and validate; raises :class:`ConfigError` listing every problem (file, path, line, message).

    ``overrides`` is the config stored in the database (``{"segments": {...}, "flows": {...}, "templates":
    {...}}``, ``null`` items removed), laid over the file as the last document."""
    issues: list[ConfigIssue] = []
    segments: dict[str, Segment] = {}
    sources: list[Path] = ([DEFAULT_CONFIG] if with_defaults else []) + ([path] if path is not None else [])
    documents: list[tuple[Path | str, dict[str, Any], Lines]] = []
    unreadable: list[ConfigIssue] = []
    for file in sources:
        try:
            data, lines, unknown = _read(file)
        except ConfigError as exc:  # unreadable or not YAML: nothing more of it can be checked
            unreadable.extend(exc.issues)
            continue
        issues.extend(unknown)
        documents.append((file, data, lines))
    if unreadable:
        raise ConfigError([*unreadable, *issues])
    if overrides:
        documents.append((STORED, overrides, {}))
    registry, template_issues = merge_templates(templates or load_default_templates(),
                                                [(str(name), data, lines) for name, data, lines in documents])
    issues.extend(template_issues)
    raw: dict[str, Any] = {}
    refused: set[str] = set()
    segment_loaders: list[tuple[SegmentLoader, set[str]]] = []
    for source, data, lines in documents:
        loader = SegmentLoader(str(source), lines)
        block = data.get("segments")
        loaded = loader.load(block, check_references=False)
        segments.update(loaded)
        for _, keys in segment_loaders:
            keys -= set(loaded)  # the last document that defines a segment answers for it
        segment_loaders.append((loader, set(loaded)))
        refused = (refused - set(loaded)) | loader.refused
        issues.extend(loader.issues)
        _drop_nulls(segments, block)
        for section, value in data.items():
            if isinstance(value, dict) and isinstance(raw.get(section), dict):
                raw[section] = {**raw[section], **value}
            else:
                raw[section] = value
    # References across documents, each reported where the segment that makes it is defined; a refused segment is
    # not "unknown" where it is named (its own problems are reported).
    for loader, keys in segment_loaders:
        loader.issues = []
        loader.refused = refused
        loader.check_references(segments, only=keys & set(segments))
        issues.extend(loader.issues)
    flows: dict[str, Flow] = {}
    for source, data, lines in documents:
        flow_loader = FlowLoader(str(source), lines, set(segments) | refused, template_info(registry))
        block = data.get("flows")
        flows.update(flow_loader.load(block))
        issues.extend(flow_loader.issues)
        _drop_nulls(flows, block)
    if issues:
        raise ConfigError(issues)
    return EngineConfig(segments=segments, flows=flows, templates=registry, raw=raw)


def _drop_nulls(loaded: dict[str, Any], block: Any) -> None:
    """``key: null`` in a later file removes a default."""
    if isinstance(block, dict):
        for key, spec in block.items():
            if spec is None:
                loaded.pop(str(key), None)


def load_flow_version(key: str, definition: dict[str, Any], segments: set[str],
                      registry: TemplateRegistry) -> Flow | None:
    """An older version of a flow, from its stored definition (for runs still in flight on it)."""
    loader = FlowLoader("stored version", {}, segments, template_info(registry))
    flows = loader.load({key: definition})
    return flows.get(key)
