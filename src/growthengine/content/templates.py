"""Message templates: a registry loaded from YAML, variants chosen by user context, one ``render`` call.

A template has a key, a channel (push, email, sms, in_app) and, per language (``th`` is required and the
fallback; ``en`` optional), its copy: a title (push, in-app), a subject (email), a body, and for email an
HTML body (the only autoescaped part). A template may carry several *variants* (SPEC 4.B), each chosen by
user-context tags such as ``loves_cameras``; a variant's body may be written as the three parts
``opening_hook``, ``product_highlight`` and ``call_to_action``, joined with a space.

The default templates ship as ``templates.yaml`` next to this module (:func:`load_default_templates`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError

from growthengine.content.formatting import LANGUAGES, FormattingError, normalize_language
from growthengine.content.template_env import build_environment
from growthengine.content.template_loading import (
    PARTS,
    CopySource,
    TemplateSource,
    VariantSource,
    normalize_tag,
    parse_templates,
)

Channel = Literal["push", "email", "sms", "in_app"]


class TemplateNotFound(KeyError):
    """No template has this key."""

    def __str__(self) -> str:
        return f"no message template named {self.args[0]!r}"


class RenderError(ValueError):
    """A template could not be rendered (a missing variable, a refused operation, a value a filter rejects).

    The message names the template, language, variant and part, never the context values themselves.
    """


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A message ready for a channel. ``title`` is for push/in-app, ``subject`` and ``html`` for email."""

    title: str | None
    subject: str | None
    body: str
    html: str | None
    image_url: str | None
    template: str = ""
    language: str = "th"
    variant: str | None = None


@dataclass(frozen=True, slots=True)
class _CompiledCopy:
    parts: dict[str, jinja2.Template]


@dataclass(frozen=True, slots=True)
class _CompiledVariant:
    source: VariantSource
    copies: dict[str, _CompiledCopy]


@dataclass(frozen=True)
class MessageTemplate:
    """One template as loaded: its source, and the variables it uses."""

    key: str
    channel: Channel
    description: str
    defaults: Mapping[str, Any]
    optional: frozenset[str]
    variants: tuple[str, ...]
    languages: tuple[str, ...]
    variables: frozenset[str] = field(default_factory=frozenset)

    @functools.cached_property
    def required_variables(self) -> frozenset[str]:
        """Variables a caller must pass: those used, less the ones with defaults or declared optional (worked out
        once: a fan-out asks for every message)."""
        return self.variables - set(self.defaults) - self.optional


class TemplateRegistry:
    """The templates the engine can send, compiled once when the registry is built."""

    def __init__(self, sources: Mapping[str, TemplateSource], partials: Mapping[str, str] | None = None) -> None:
        partials = dict(partials or {})
        self._text_envs = {lang: build_environment(lang, html=False, partials=partials) for lang in LANGUAGES}
        self._html_envs = {lang: build_environment(lang, html=True, partials=partials) for lang in LANGUAGES}
        self._sources = dict(sources)
        self._partials = partials
        self._compiled: dict[str, dict[str, _CompiledVariant]] = {}
        self._image: dict[str, jinja2.Template | None] = {}
        self._templates: dict[str, MessageTemplate] = {}
        for key, source in self._sources.items():
            self._compile(key, source)

    @classmethod
    def from_yaml(cls, text: str, *, file: str = "templates.yaml") -> TemplateRegistry:
        """Parse and compile a templates document; a problem raises ``ConfigError`` naming file, line and path."""
        sources, partials = parse_templates(text, file=file)
        return cls(sources, partials)

    # -- what is there -------------------------------------------------------------------------------------

    def keys(self) -> list[str]:
        return sorted(self._templates)

    def sources(self) -> dict[str, TemplateSource]:
        """The parsed templates this registry was built from (to build another over them)."""
        return dict(self._sources)

    def partials(self) -> dict[str, str]:
        return dict(self._partials)

    def __contains__(self, key: object) -> bool:
        return key in self._templates

    def get(self, key: str) -> MessageTemplate:
        try:
            return self._templates[key]
        except KeyError:
            raise TemplateNotFound(key) from None

    def variables(self, key: str) -> frozenset[str]:
        """Every variable the template reads, in any language, variant or part (for validating flow config)."""
        return self.get(key).variables

    def missing_variables(self, key: str, provided: Iterable[str]) -> frozenset[str]:
        """Required variables that ``provided`` does not cover."""
        return self.get(key).required_variables - set(provided)

    def missing_in(self, key: str, context: Mapping[str, Any]) -> list[str]:
        """Required variables that ``context`` lacks or holds as ``None`` (:meth:`missing_variables` of its keys
        with a value), sorted; asked per message, so it looks up the few required names, not every context key."""
        return sorted(k for k in self.get(key).required_variables if context.get(k) is None)

    def choose_variant(self, key: str, user_context: Iterable[str] = ()) -> str:
        """The first variant (in file order) whose ``when`` tags meet the user's context, else the default."""
        variants = self._compiled[self.get(key).key]
        tags = {normalize_tag(t) for t in user_context}
        for name, variant in variants.items():
            if variant.source.when & tags:
                return name
        return next(iter(variants))

    # -- rendering ----------------------------------------------------------------------------------------

    def render(
        self, key: str, language: str | None, context: Mapping[str, Any], *, variant: str | None = None
    ) -> RenderedMessage:
        """Render ``key`` in ``language`` (unknown languages fall back to Thai).

        Without ``variant``, one is chosen from ``context["user_context"]`` (a list of tags) when the template
        has variants. Raises :class:`TemplateNotFound` or :class:`RenderError`.
        """
        template = self.get(key)
        variants = self._compiled[key]
        if variant is None:
            raw_tags = context.get("user_context", ())
            tags = [raw_tags] if isinstance(raw_tags, str) else [str(t) for t in raw_tags or ()]
            variant = self.choose_variant(key, tags)
        if variant not in variants:
            raise RenderError(f"template {key!r} has no variant {variant!r} (it has: {', '.join(variants)})")
        lang = normalize_language(language)
        copies = variants[variant].copies
        copy_lang = lang if lang in copies else "th"
        values = {**template.defaults, **context}
        rendered = {part: self._render_part(key, copy_lang, variant, part, tpl, values)
                    for part, tpl in copies[copy_lang].parts.items()}
        image_tpl = self._image[key]
        image = self._render_part(key, copy_lang, variant, "image", image_tpl, values) if image_tpl else ""
        return RenderedMessage(
            title=rendered.get("title") or None,
            subject=rendered.get("subject") or None,
            body=rendered.get("body", ""),
            html=rendered.get("html") or None,
            image_url=image or None,
            template=key,
            language=copy_lang,
            variant=variant if len(variants) > 1 else None,
        )

    @staticmethod
    def _render_part(
        key: str, language: str, variant: str, part: str, template: jinja2.Template, values: Mapping[str, Any]
    ) -> str:
        where = f"template {key!r} ({language}, variant {variant!r}, {part})"
        try:
            return template.render(values).strip()
        except SecurityError as exc:
            raise RenderError(f"{where}: refused by the sandbox: {exc}") from None
        except jinja2.UndefinedError as exc:
            raise RenderError(f"{where}: {exc}") from None
        except FormattingError as exc:
            raise RenderError(f"{where}: {exc}") from None
        except jinja2.TemplateError as exc:
            raise RenderError(f"{where}: {exc}") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from None

    # -- compiling ----------------------------------------------------------------------------------------

    def _compile(self, key: str, source: TemplateSource) -> None:
        used: set[str] = set()
        compiled: dict[str, _CompiledVariant] = {}
        for name, variant in source.variants.items():
            copies: dict[str, _CompiledCopy] = {}
            for lang, copy in variant.copies.items():
                copies[lang] = self._compile_copy(key, name, lang, copy, used)
            compiled[name] = _CompiledVariant(source=variant, copies=copies)
        self._compiled[key] = compiled
        self._image[key] = None
        if source.image is not None:
            self._image[key] = self._compile_source(key, "image", source.image, self._text_envs["th"], used)
        languages = tuple(lang for lang in LANGUAGES if any(lang in v.copies for v in source.variants.values()))
        self._templates[key] = MessageTemplate(
            key=key,
            channel=source.channel,
            description=source.description,
            defaults=dict(source.defaults),
            optional=frozenset(source.optional),
            variants=tuple(compiled),
            languages=languages,
            variables=frozenset(used),
        )

    def _compile_copy(self, key: str, variant: str, lang: str, copy: CopySource, used: set[str]) -> _CompiledCopy:
        parts: dict[str, jinja2.Template] = {}
        for part in PARTS:
            text = copy.parts.get(part)
            if text is None:
                continue
            env = self._html_envs[lang] if part == "html" else self._text_envs[lang]
            parts[part] = self._compile_source(f"{key}/{variant}/{lang}", part, text, env, used)
        return _CompiledCopy(parts=parts)

    @staticmethod
    def _compile_source(where: str, part: str, text: str, env: jinja2.Environment, used: set[str]) -> jinja2.Template:
        try:
            ast = env.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"template {where} {part}: line {exc.lineno}: {exc.message}") from None
        used.update(meta.find_undeclared_variables(ast))
        return env.from_string(text)


@functools.lru_cache(maxsize=1)
def load_default_templates() -> TemplateRegistry:
    """The templates that ship with the engine (``growthengine/content/templates.yaml``)."""
    text = resources.files("growthengine.content").joinpath("templates.yaml").read_text(encoding="utf-8")
    return TemplateRegistry.from_yaml(text, file="growthengine/content/templates.yaml")
