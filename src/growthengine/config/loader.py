"""The engine's config: the shipped defaults, overlaid by a marketer's file, validated as a whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from growthengine.config.errors import ConfigError, ConfigIssue
from growthengine.config.yaml_lines import load_with_lines
from growthengine.segments.loader import SegmentLoader
from growthengine.segments.model import Segment

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
_TOP_LEVEL = {"segments", "flows", "settings", "templates", "campaigns"}


@dataclass
class EngineConfig:
    segments: dict[str, Segment] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def _read(path: Path) -> tuple[dict[str, Any], dict[tuple[str | int, ...], int]]:
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
        return {}, lines
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(name, "", "the top level must be a mapping (segments:, flows:, ...)", 1)])
    unknown = sorted(set(map(str, data)) - _TOP_LEVEL)
    if unknown:
        sections = ", ".join(sorted(_TOP_LEVEL))
        raise ConfigError([ConfigIssue(name, unknown[0], f"unknown section; sections are {sections}",
                                       lines.get((unknown[0],)))])
    return data, lines


def load_config(path: Path | None = None, *, with_defaults: bool = True) -> EngineConfig:
    """Load and validate; raises :class:`ConfigError` listing every problem (file, path, line, message)."""
    issues: list[ConfigIssue] = []
    segments: dict[str, Segment] = {}
    sources: list[Path] = ([DEFAULT_CONFIG] if with_defaults else []) + ([path] if path is not None else [])
    raw: dict[str, Any] = {}
    for source in sources:
        data, lines = _read(source)
        loader = SegmentLoader(str(source), lines)
        block = data.get("segments")
        loaded = loader.load(block)
        issues.extend(loader.issues)
        segments.update(loaded)
        if isinstance(block, dict):
            for key, spec in block.items():
                if spec is None:
                    segments.pop(str(key), None)
        raw.update(data)
    if issues:
        raise ConfigError(issues)
    final = SegmentLoader("config", {})
    final._check_references(segments, ("segments",))
    if final.issues:
        raise ConfigError(final.issues)
    return EngineConfig(segments=segments, raw=raw)
