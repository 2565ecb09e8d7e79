"""Reading message templates from YAML, with errors that name the file, the line and the path.

The document::

    partials:                      # optional: named sources templates import macros from
      cards.html: "{% macro product_card(product) %}...{% endmacro %}"
    templates:
      cart_nudge_push:
        channel: push              # push | email | sms | in_app
        description: "..."
        image: "{{ image_url | default('') }}"     # optional, push / in_app / email
        defaults: {site_url: "https://jaikod.com"} # optional values a context may override
        optional: [stock]          # optional: variables a caller may leave out (guarded in the copy)
        th: {title: "...", body: "..."}            # Thai is required: it is the fallback
        en: {title: "...", body: "..."}
      personalized_promo_push:
        channel: push
        variants:                  # instead of th/en: several variants, the first is the default
          default: {th: {...}, en: {...}}
          camera_lover:
            when: [loves_cameras]  # user-context tags that choose it
            th: {title: "...", opening_hook: "...", product_highlight: "...", call_to_action: "..."}

Parts per channel: push and in_app need ``title`` and ``body``; email needs ``subject``, ``body`` (plain
text) and ``html``; sms needs ``body``. A body may instead be written as ``opening_hook``,
``product_highlight`` and ``call_to_action`` (SPEC 4.B), joined with one space.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import yaml

from growthengine.config.errors import ConfigError, ConfigIssue
from growthengine.config.yaml_lines import Path, format_path, load_with_lines

ChannelName = Literal["push", "email", "sms", "in_app"]
CHANNEL_NAMES: tuple[ChannelName, ...] = ("push", "email", "sms", "in_app")
PARTS = ("title", "subject", "body", "html")
STRUCTURE = ("opening_hook", "product_highlight", "call_to_action")
_LANGS = ("th", "en")
_PARTS_BY_CHANNEL: dict[str, tuple[str, ...]] = {
    "push": ("title", "body"),
    "in_app": ("title", "body"),
    "email": ("subject", "body", "html"),
    "sms": ("body",),
}
_TEMPLATE_KEYS = {"channel", "description", "image", "defaults", "optional", "variants", *_LANGS}
_TAG_SEPARATORS = re.compile(r"[\s\-]+")


def normalize_tag(tag: str) -> str:
    """A user-context tag as variants match it: ``"Loves Cameras"`` -> ``loves_cameras``."""
    return _TAG_SEPARATORS.sub("_", tag.strip().lower())


@dataclass(frozen=True, slots=True)
class CopySource:
    """One language's copy: part name -> Jinja source."""

    parts: dict[str, str]


@dataclass(frozen=True, slots=True)
class VariantSource:
    name: str
    when: frozenset[str]
    copies: dict[str, CopySource]


@dataclass(frozen=True, slots=True)
class TemplateSource:
    key: str
    channel: ChannelName
    description: str
    image: str | None
    defaults: dict[str, Any]
    optional: tuple[str, ...]
    variants: dict[str, VariantSource] = field(default_factory=dict)


class _Reader:
    def __init__(self, file: str, lines: dict[Path, int]) -> None:
        self.file = file
        self.lines = lines
        self.issues: list[ConfigIssue] = []

    def fail(self, path: Path, message: str) -> None:
        line, near = self.lines.get(path), path
        while line is None and near:  # the nearest line that holds the path (none for a JSON body)
            near = near[:-1]
            line = self.lines.get(near)
        self.issues.append(ConfigIssue(self.file, format_path(path) or "(top)", message, line))

    def mapping(self, value: Any, path: Path) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, got {type(value).__name__}")
            return None
        return cast(dict[str, Any], value)


def parse_templates(text: str, *, file: str) -> tuple[dict[str, TemplateSource], dict[str, str]]:
    """Templates and partials from a YAML document; raises ``ConfigError`` listing every problem."""
    try:
        data, lines = load_with_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigIssue(file, "(top)", f"not valid YAML: {exc}", line)]) from None
    reader = _Reader(file, lines)
    root = reader.mapping(data, ())
    sources: dict[str, TemplateSource] = {}
    partials: dict[str, str] = {}
    if root is not None:
        for key in root:
            if key not in ("templates", "partials"):
                reader.fail((key,), "unknown key (expected: templates, partials)")
        raw_partials = reader.mapping(root.get("partials", {}), ("partials",)) or {}
        for name, source in raw_partials.items():
            if isinstance(source, str):
                partials[str(name)] = source
            else:
                reader.fail(("partials", name), "must be template text")
        raw_templates = reader.mapping(root.get("templates"), ("templates",)) or {}
        for key, raw in raw_templates.items():
            source = _template(reader, str(key), raw, ("templates", key))
            if source is not None:
                sources[str(key)] = source
    if reader.issues:
        raise ConfigError(reader.issues)
    return sources, partials


def read_template_block(block: Any, *, file: str, lines: dict[Path, int],
                        base: Path = ("templates",)) -> tuple[dict[str, TemplateSource | None], list[ConfigIssue]]:
    """The ``templates:`` block of a config file (or one stored template): every problem, by path. A ``null``
    item removes the template of that key (``None`` in the answer)."""
    reader = _Reader(file, lines)
    sources: dict[str, TemplateSource | None] = {}
    raw_templates = reader.mapping(block, base) or {}
    for key, raw in raw_templates.items():
        if raw is None:
            sources[str(key)] = None
            continue
        source = _template(reader, str(key), raw, (*base, key))
        if source is not None:
            sources[str(key)] = source
    return sources, reader.issues


def _template(reader: _Reader, key: str, raw: Any, path: Path) -> TemplateSource | None:
    body = reader.mapping(raw, path)
    if body is None:
        return None
    for name in body:
        if name not in _TEMPLATE_KEYS:
            reader.fail((*path, name), f"unknown key (expected one of: {', '.join(sorted(_TEMPLATE_KEYS))})")
    channel = body.get("channel")
    if channel not in CHANNEL_NAMES:
        # The rest is still checked (every problem of the template at once), but not against a channel.
        reader.fail((*path, "channel"), f"must be one of {', '.join(CHANNEL_NAMES)}, got {channel!r}")
        channel = None
    image = body.get("image")
    if image is not None and (not isinstance(image, str) or channel == "sms"):
        reader.fail((*path, "image"), "must be template text, and sms messages carry no image")
        image = None
    defaults = reader.mapping(body.get("defaults", {}), (*path, "defaults")) or {}
    optional = body.get("optional", [])
    if not isinstance(optional, list) or not all(isinstance(o, str) for o in optional):
        reader.fail((*path, "optional"), "must be a list of variable names")
        optional = []
    variants: dict[str, VariantSource] = {}
    if "variants" in body:
        if any(lang in body for lang in _LANGS):
            reader.fail(path, "write the copy either under th/en or under variants, not both")
        raw_variants = reader.mapping(body["variants"], (*path, "variants")) or {}
        if not raw_variants:
            reader.fail((*path, "variants"), "needs at least one variant")
        for name, raw_variant in raw_variants.items():
            variant = _variant(reader, str(name), raw_variant, (*path, "variants", name), channel)
            if variant is not None:
                variants[str(name)] = variant
    else:
        variant = _variant(reader, "default", {lang: body[lang] for lang in _LANGS if lang in body}, path, channel)
        if variant is not None:
            variants["default"] = variant
    if channel is None:
        return None
    return TemplateSource(
        key=key,
        channel=channel,
        description=str(body.get("description", "")),
        image=image,
        defaults=dict(defaults),
        optional=tuple(optional),
        variants=variants,
    )


def _variant(reader: _Reader, name: str, raw: Any, path: Path, channel: str | None) -> VariantSource | None:
    body = reader.mapping(raw, path)
    if body is None:
        return None
    when_raw = body.get("when", [])
    when_list = [when_raw] if isinstance(when_raw, str) else when_raw
    if not isinstance(when_list, list) or not all(isinstance(t, str) for t in when_list):
        reader.fail((*path, "when"), "must be a user-context tag or a list of them")
        when_list = []
    for extra in set(body) - {"when", *_LANGS}:
        reader.fail((*path, extra), "unknown key (expected: when, th, en)")
    if "th" not in body:
        reader.fail(path, "Thai copy (th) is required: it is the fallback for every language")
    copies: dict[str, CopySource] = {}
    for lang in _LANGS:
        if lang in body:
            copy = _copy(reader, body[lang], (*path, lang), channel)
            if copy is not None:
                copies[lang] = copy
    tags = frozenset(normalize_tag(t) for t in when_list)
    return VariantSource(name=name, when=tags, copies=copies)


def _copy(reader: _Reader, raw: Any, path: Path, channel: str | None) -> CopySource | None:
    """One language's parts; with no (valid) channel, only what does not depend on it is checked."""
    body = reader.mapping(raw, path)
    if body is None:
        return None
    allowed = _PARTS_BY_CHANNEL[channel] if channel is not None else PARTS
    parts: dict[str, str] = {}
    for name, value in body.items():
        if name not in allowed and name not in STRUCTURE:
            reader.fail((*path, name), f"a {channel} message has no {name!r} (it has: {', '.join(allowed)})")
        elif not isinstance(value, str):
            reader.fail((*path, name), "must be template text")
        else:
            parts[name] = value
    structured = [p for p in STRUCTURE if p in parts]
    if structured:
        if "body" in parts:
            reader.fail(path, "write either body or opening_hook/product_highlight/call_to_action, not both")
        elif len(structured) != len(STRUCTURE):
            reader.fail(path, f"a structured body needs all of {', '.join(STRUCTURE)}")
        else:
            parts["body"] = " ".join(parts[p].strip() for p in STRUCTURE)
        for p in structured:
            parts.pop(p)
    for needed in allowed if channel is not None else ():
        if needed not in parts:
            reader.fail(path, f"a {channel} message needs {needed!r}")
    return CopySource(parts=parts)

