"""Personalized copy variants: generated drafts, validated, cached per (template, context), with the curated copy
as the default and the fallback (SPEC 4.B).

**Validation** (:func:`validate_variant`), on the text as the user would see it (placeholders filled):

* every required fact (the rendered price, coupon code, ...) appears verbatim;
* the length is within the channel's limit, :data:`CHANNEL_LIMITS`, unless the caller gives one: push body 178
  characters (what iOS shows of a notification on the lock screen; Android shows less collapsed and more expanded),
  SMS one segment (70 UTF-16 units when any character needs UCS-2, as Thai does, else 160), in-app 240, the drafted
  part of an email 1,000; characters are Unicode code points, except SMS which counts UTF-16 units as carriers do;
* Thai copy contains Thai letters (the baht sign alone does not count);
* nothing unresolved is left: ``{{ ... }}``, ``{% ... %}``, ``{name}``, ``[Product]``-style brackets, ``<NAME>``.

**Fallback.** The curated copy is used, and the reason recorded, when there is no generator, it fails (timeout,
garbage, wrong shape), or no draft passes; a failure is remembered for ``retry_after`` so a broken endpoint is not
called for every message.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from growthengine.optimize.content_generator import ContentGenerator, DraftRequest, GenerationFailed

CHANNEL_LIMITS: dict[str, int] = {"push": 178, "sms": 70, "in_app": 240, "email": 1000}
SMS_GSM_LIMIT = 160
CURATED = "curated"

_SLOT = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_THAI = re.compile(r"[\u0E01-\u0E3A\u0E40-\u0E5B]")  # Thai letters and marks; not the baht sign U+0E3F
_PLACEHOLDERS = (
    re.compile(r"\{\{.*?\}\}|\{\{|\}\}"),
    re.compile(r"\{%.*?%\}|\{%|%\}"),
    re.compile(r"\{[A-Za-z_][A-Za-z0-9_ .-]*\}"),
    re.compile(r"\[[A-Za-z_][A-Za-z0-9_ -]*\]"),
    re.compile(r"<[A-Z][A-Z0-9_]*>"),
)
_GSM = re.compile(r"^[A-Za-z0-9 \r\n@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,\-./:;<=>?¡ÄÖÑÜ§¿äöñüà^{}\\\[~\]|€]*$")


def text_length(text: str, channel: str) -> int:
    """Length as the channel counts it: UTF-16 units for SMS, code points otherwise."""
    return len(text.encode("utf-16-le")) // 2 if channel == "sms" else len(text)


def channel_limit(text: str, channel: str) -> int | None:
    if channel == "sms" and _GSM.match(text):
        return SMS_GSM_LIMIT
    return CHANNEL_LIMITS.get(channel)


def validate_variant(text: str, required_facts: list[str], channel: str, max_length: int | None = None, *,
                     language: str = "th") -> list[str]:
    """The problems with ``text`` as copy for ``channel`` (empty when it may be sent)."""
    problems: list[str] = []
    if not text.strip():
        return ["the text is empty"]
    for fact in required_facts:
        if fact and fact not in text:
            problems.append(f"required fact {fact!r} is missing or altered")
    limit = max_length if max_length is not None else channel_limit(text, channel)
    length = text_length(text, channel)
    if limit is not None and length > limit:
        problems.append(f"{length} characters, over the {channel} limit of {limit}")
    if language == "th" and not _THAI.search(text):
        problems.append("Thai copy without Thai script")
    leftovers = [m.group(0) for pattern in _PLACEHOLDERS for m in pattern.finditer(text)]
    if leftovers:
        problems.append(f"unresolved placeholder {leftovers[0]!r}")
    return problems


def render_slots(text: str, values: Mapping[str, str]) -> str:
    """Fill ``{{ name }}`` placeholders whose names are in ``values``; others are left for validation to catch."""
    return _SLOT.sub(lambda m: values.get(m.group(1), m.group(0)), text)


@dataclass(frozen=True, slots=True)
class CopyRequest:
    """One message's copy: the template, the user's context, the curated copy and the values of its slots."""

    template: str
    channel: str
    language: str
    tags: tuple[str, ...]
    curated: str  # curated copy with {{ slot }} placeholders
    values: Mapping[str, str]  # slot -> the rendered value ("฿1,290", "SAVE5-XYZ")
    required: tuple[str, ...] = ()  # slots whose values must appear verbatim
    max_length: int | None = None

    def cache_key(self) -> tuple[str, str, str, tuple[str, ...], str]:
        return (self.template, self.channel, self.language, tuple(sorted(set(self.tags))), self.curated)

    def required_facts(self) -> list[str]:
        return [self.values[s] for s in self.required if s in self.values]


@dataclass(frozen=True, slots=True)
class CopyChoice:
    text: str
    variant: str
    source: Literal["generated", "curated"]
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VariantSet:
    """The variants usable for one message: ``curated`` first, then the generated drafts that passed."""

    variants: dict[str, str]
    reason: str
    rejected: dict[str, list[str]] = field(default_factory=dict)
    cache: str = "miss"


@dataclass(frozen=True, slots=True)
class _Entry:
    drafts: tuple[str, ...]
    error: str | None
    at: dt.datetime


class DraftCache:
    """Drafts (or the last failure) per (template, channel, language, context, curated copy), least recently used
    out first."""

    def __init__(self, max_entries: int = 2_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple[Any, ...], entry: _Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class CopyWriter:
    """Generated variants when they pass validation, the curated copy otherwise, always with the reason."""

    def __init__(self, generator: ContentGenerator | None, *, cache: DraftCache | None = None, count: int = 2,
                 retry_after: dt.timedelta = dt.timedelta(minutes=15)) -> None:
        self.generator = generator
        self.cache = cache if cache is not None else DraftCache()
        self.count = count
        self.retry_after = retry_after

    def variants(self, request: CopyRequest, *, now: dt.datetime) -> VariantSet:
        """``curated`` plus each cached or freshly generated draft (``ai_1``, ``ai_2``, ...) that passes for this
        message. Draft names are stable for a (template, context), so they can be experiment variants."""
        variants = {CURATED: request.curated}
        if self.generator is None:
            return VariantSet(variants, "no_generator: no content generator is configured")
        key = request.cache_key()
        entry = self.cache.get(key)
        cache = "hit"
        if entry is None or (entry.error is not None and now - entry.at >= self.retry_after):
            cache = "miss"
            entry = self._generate(request, now)
            self.cache.put(key, entry)
        if entry.error is not None:
            return VariantSet(variants, f"generator_failed: {entry.error}", cache=cache)
        rejected: dict[str, list[str]] = {}
        for i, draft in enumerate(entry.drafts, start=1):
            name = f"ai_{i}"
            problems = self._check(request, draft)
            if problems:
                rejected[name] = problems
            else:
                variants[name] = draft
        if len(variants) == 1:
            first = next(iter(rejected.items()), (None, ["no drafts"]))
            return VariantSet(variants, f"all_drafts_rejected: {first[0]}: {'; '.join(first[1])}", rejected, cache)
        return VariantSet(variants, f"generated: {len(variants) - 1} draft(s) passed", rejected, cache)

    def write(self, request: CopyRequest, *, now: dt.datetime, variant: str | None = None) -> CopyChoice:
        """The copy for one message: ``variant`` (say, from an experiment) if it passes, else the first generated
        variant that passes, else the curated copy; ``reason`` says which and why."""
        found = self.variants(request, now=now)
        inputs: dict[str, Any] = {"template": request.template, "tags": sorted(request.tags), "cache": found.cache,
                                  "generation": found.reason, "rejected": found.rejected}
        if variant == CURATED:
            return self._curated(request, "curated_requested: the curated variant was asked for", inputs)
        if variant is not None:
            if variant in found.variants:
                return CopyChoice(render_slots(found.variants[variant], request.values), variant, "generated",
                                  f"generated: variant {variant} passed validation", inputs)
            why = "; ".join(found.rejected.get(variant, [])) or found.reason
            return self._curated(request, f"variant_rejected: {variant}: {why}", inputs)
        generated = [name for name in found.variants if name != CURATED]
        if generated:
            name = generated[0]
            return CopyChoice(render_slots(found.variants[name], request.values), name, "generated",
                              f"generated: variant {name} passed validation", inputs)
        return self._curated(request, found.reason, inputs)

    def _curated(self, request: CopyRequest, reason: str, inputs: dict[str, Any]) -> CopyChoice:
        text = render_slots(request.curated, request.values)
        problems = validate_variant(text, request.required_facts(), request.channel, request.max_length,
                                    language=request.language)
        if problems:  # curated copy is trusted and sent anyway; the problems are kept for the dashboard
            inputs = {**inputs, "curated_problems": problems}
        return CopyChoice(text, CURATED, "curated", reason, inputs)

    @staticmethod
    def _check(request: CopyRequest, draft: str) -> list[str]:
        return validate_variant(render_slots(draft, request.values), request.required_facts(), request.channel,
                                request.max_length, language=request.language)

    def _generate(self, request: CopyRequest, now: dt.datetime) -> _Entry:
        assert self.generator is not None
        limit = request.max_length or CHANNEL_LIMITS.get(request.channel, 1000)
        draft_request = DraftRequest(
            template=request.template, channel=request.channel, language=request.language, tags=request.tags,
            curated=request.curated, slots=tuple(request.values), required=request.required, max_length=limit,
            count=self.count)
        try:
            drafts = self.generator.draft(draft_request)
        except GenerationFailed as exc:
            return _Entry((), f"{exc.code}: {exc}", now)
        return _Entry(tuple(drafts[: self.count]), None, now)
