"""One HTTP call to a provider with the engine's retry policy (content/http_retry.RetryPolicy).

Retried: connection errors, timeouts, 5xx, 408 and 429 (and whatever a provider's own ``transient`` test says,
such as Facebook's throttling codes sent with a 400). A ``Retry-After`` in seconds is honoured, up to a cap, else
the provider's own ``wait_hint`` (SendGrid's ``X-RateLimit-Reset``, Meta's usage headers); a longer wait ends the
call as a transient failure rather than holding the worker. Nothing else in 4xx is retried.
The result is returned, never raised, so each provider maps it to a :class:`Delivery` in one place.
Logs name the service, the path, the status and the message id: never a body, an address or a credential.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from growthengine.channels.providers.base import scrub
from growthengine.content.http_retry import RetryPolicy

log = logging.getLogger(__name__)

RETRYABLE_4XX = frozenset({408, 429})
MAX_RETRY_AFTER_S = 30.0


@dataclass(frozen=True)
class HttpResult:
    """How a call ended: ``response`` is the last answer (None if none came), ``error`` is None on a 2xx."""

    response: httpx.Response | None
    error: str | None
    permanent: bool
    attempts: int

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> int | None:
        return self.response.status_code if self.response is not None else None

    def json(self) -> Any:
        """The decoded JSON body of the last answer, or None when it is empty or not JSON."""
        if self.response is None or not self.response.content:
            return None
        try:
            return orjson.loads(self.response.content)
        except orjson.JSONDecodeError:
            return None


def call(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    service: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    message_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    data: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    transient: Callable[[httpx.Response], bool] | None = None,
    describe: Callable[[httpx.Response], str] | None = None,
    max_retry_after_s: float = MAX_RETRY_AFTER_S,
    wait_hint: Callable[[httpx.Response], float | None] | None = None,
) -> HttpResult:
    """Make the call, retrying as ``policy`` says; see the module docstring for what is retried."""
    path = httpx.URL(url).path
    content = orjson.dumps(json) if json is not None else None
    send_headers = dict(headers or {})
    if content is not None:
        send_headers.setdefault("Content-Type", "application/json")
    explain = describe or error_text
    response: httpx.Response | None = None
    error = "no attempt made"
    for attempt in range(1, policy.attempts + 1):
        wait = policy.delay(attempt)
        try:
            response = client.request(method, url, content=content, data=data, params=params,
                                      headers=send_headers, auth=auth, timeout=policy.timeout_s)
        except httpx.TimeoutException:
            response, error = None, f"timed out after {policy.timeout_s:g}s"
        except httpx.TransportError as exc:
            response, error = None, f"could not connect ({type(exc).__name__})"
        else:
            status = response.status_code
            if 200 <= status < 300:
                return HttpResult(response, None, False, attempt)
            error = f"HTTP {status}: {scrub(explain(response))}"
            retryable = status >= 500 or status in RETRYABLE_4XX or (transient is not None and transient(response))
            if not retryable:
                log.info("%s %s refused message %s: HTTP %d", service, path, message_id or "-", status)
                return HttpResult(response, error, True, attempt)
            after = retry_after(response)
            if after is None and wait_hint is not None:
                after = wait_hint(response)
            if after is not None:
                if after > max_retry_after_s:
                    log.warning("%s %s asks to wait %.0fs for message %s; giving up for now",
                                service, path, after, message_id or "-")
                    return HttpResult(response, f"{error} (retry after {after:.0f}s)", False, attempt)
                wait = max(wait, after)
        if attempt < policy.attempts:
            log.warning("%s %s failed for message %s (%s), attempt %d of %d; retrying in %.2fs",
                        service, path, message_id or "-", _status_of(response), attempt, policy.attempts, wait)
            sleep(wait)
    log.warning("%s %s failed for message %s after %d attempts (%s)",
                service, path, message_id or "-", policy.attempts, _status_of(response))
    return HttpResult(response, error, False, policy.attempts)


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` wait in seconds, when given as a number (an HTTP date is not read: no wall clock)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(seconds, 0.0)


def ratelimit_reset(now: Callable[[], float]) -> Callable[[httpx.Response], float | None]:
    """A ``wait_hint`` reading ``X-RateLimit-Reset`` (Unix seconds when the window refills) against ``now()``,
    system time in Unix seconds."""

    def hint(response: httpx.Response) -> float | None:
        value = response.headers.get("X-RateLimit-Reset")
        if value is None:
            return None
        try:
            reset = float(value.strip())
        except ValueError:
            return None
        return max(reset - now(), 0.0)

    return hint


def error_text(response: httpx.Response) -> str:
    """The short error message a service gave (JSON ``error.message``, ``errors[0].message``, ``message``)."""
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.reason_phrase or "error"
    return _message_in(data) or response.reason_phrase or "error"


def _message_in(data: Any) -> str | None:
    if isinstance(data, dict):
        for key in ("error", "errors", "message", "detail", "error_description"):
            if key in data:
                found = _message_in(data[key])
                if found:
                    return found
        return None
    if isinstance(data, list):
        return _message_in(data[0]) if data else None
    if isinstance(data, str):
        return data[:200]
    return None


def _status_of(response: httpx.Response | None) -> str:
    return f"HTTP {response.status_code}" if response is not None else "no answer"
