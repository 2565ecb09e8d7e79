"""The content generator port (SPEC 4.B "GenAI Content Personalization") and its OpenAI-compatible client.

A generator drafts copy variants for a template and a user context. Drafts keep the template's slots as
``{{ name }}`` placeholders (product, price, coupon code, ...), so one set of drafts serves every message with the
same template and context and is cached per (template, context) by :class:`~growthengine.optimize.copy_variants.
CopyWriter`, which also validates every draft and falls back to the curated copy. Nothing here reaches a user
unchecked.

:class:`OpenAICompatibleGenerator` speaks the chat-completions protocol (``POST {base_url}/chat/completions``) that
OpenAI, Azure OpenAI, vLLM, llama.cpp's server, Ollama and most gateways accept. It asks for a JSON object
``{"variants": ["...", ...]}``; anything else is a :class:`GenerationFailed` with the reason.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import httpx

from growthengine.content.http_retry import CallFailed, RetryPolicy, bearer, post_json


class GenerationFailed(Exception):
    """The generator gave no usable drafts. ``code``: ``unavailable`` (timeout, connection, HTTP error),
    ``not_json`` (the answer or its content is not JSON) or ``bad_answer`` (JSON of the wrong shape)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DraftRequest:
    """What to draft: ``count`` variants of ``curated`` for users tagged ``tags``."""

    template: str
    channel: str
    language: str
    tags: tuple[str, ...]
    curated: str  # the curated copy, with {{ slot }} placeholders
    slots: tuple[str, ...]  # placeholders a draft may use
    required: tuple[str, ...]  # placeholders every draft must keep (facts such as price and coupon code)
    max_length: int  # characters, once the placeholders are filled
    count: int = 2


class ContentGenerator(Protocol):
    """Drafts copy variants. Raises :class:`GenerationFailed` when it cannot."""

    def draft(self, request: DraftRequest) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """Where the chat-completions endpoint is (from settings: base URL, model, key) and how hard to try."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 10.0
    attempts: int = 2
    temperature: float = 0.7
    json_mode: bool = True  # send response_format {"type": "json_object"}


SYSTEM_PROMPT = (
    "You write short marketing copy for JaiKod, a Thai second-hand marketplace. Follow the structure "
    "[Opening_Hook] [Product_Highlight] [Call_To_Action]. Write in the requested language (Thai: natural, friendly "
    "Thai script). Keep every placeholder such as {{ price }} exactly as written, never invent prices, codes or "
    "product names, never add placeholders of your own, and stay under the length limit. "
    'Answer with a JSON object only: {"variants": ["...", "..."]}.'
)


class OpenAICompatibleGenerator:
    """A :class:`ContentGenerator` that calls any OpenAI-compatible chat-completions endpoint over httpx."""

    def __init__(self, config: GeneratorConfig, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        self._policy = RetryPolicy(attempts=config.attempts, timeout_s=config.timeout_s)
        self._owns_client = client is None
        self._client = client or httpx.Client()
        self._sleep = sleep

    def payload(self, request: DraftRequest) -> dict[str, Any]:
        """The chat-completions body for ``request``."""
        brief = {
            "template": request.template, "channel": request.channel, "language": request.language,
            "user_context": list(request.tags), "curated_copy": request.curated,
            "placeholders_allowed": [f"{{{{ {s} }}}}" for s in request.slots],
            "placeholders_required": [f"{{{{ {s} }}}}" for s in request.required],
            "max_characters": request.max_length, "variants_wanted": request.count,
        }
        body: dict[str, Any] = {
            "model": self.config.model, "temperature": self.config.temperature,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                         {"role": "user", "content": json.dumps(brief, ensure_ascii=False)}],
        }
        if self.config.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def draft(self, request: DraftRequest) -> list[str]:
        try:
            answer = post_json(self._client, self._url, self.payload(request), service="content generator",
                               policy=self._policy, headers=bearer(self.config.api_key), sleep=self._sleep)
        except CallFailed as exc:
            code = "not_json" if "not JSON" in str(exc) else "unavailable"
            raise GenerationFailed(code, str(exc)) from None
        return parse_drafts(answer)[: request.count]

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> OpenAICompatibleGenerator:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_drafts(answer: Any) -> list[str]:
    """The drafts in a chat-completions answer: ``choices[0].message.content`` holding ``{"variants": [...]}``
    (or a bare list; items may be strings or objects with ``text``). Raises :class:`GenerationFailed`."""
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise GenerationFailed("bad_answer", "the answer has no choices[0].message.content") from None
    if not isinstance(content, str):
        raise GenerationFailed("bad_answer", "the message content is not text")
    fenced = _FENCE.match(content)
    try:
        data = json.loads(fenced.group(1) if fenced else content)
    except json.JSONDecodeError:
        raise GenerationFailed("not_json", f"the message content is not JSON: {content[:80]!r}") from None
    items: Any = data.get("variants") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise GenerationFailed("bad_answer", 'the content has no "variants" list')
    drafts = [_text(item) for item in items]
    drafts = [d for d in drafts if d]
    if not drafts:
        raise GenerationFailed("bad_answer", "the answer holds no drafts")
    return drafts


def _text(item: Any) -> str:
    if isinstance(item, dict):
        item = item.get("text") or item.get("body") or item.get("copy")
    return item.strip() if isinstance(item, str) else ""

