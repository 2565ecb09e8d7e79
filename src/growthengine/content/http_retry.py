"""Calling an outside engine over HTTP: a timeout per attempt, a few retries with exponential backoff.

Retried: connection errors, timeouts, 5xx, and the two 4xx answers that mean "try again" (408, 429).
Not retried: any other 4xx (the request itself is wrong; sending it again changes nothing).
Logs name the service, the path and the status, never a request body (which may carry user data).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

log = logging.getLogger(__name__)

_RETRYABLE_4XX = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in all, waiting ``backoff_s`` * 2**n (at most ``max_backoff_s``) between."""

    attempts: int = 3
    timeout_s: float = 5.0
    backoff_s: float = 0.25
    max_backoff_s: float = 4.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.timeout_s <= 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("timeout must be positive and backoff not negative")

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))


class CallFailed(Exception):
    """The call did not succeed. ``status`` is the last HTTP status (None if none came back)."""

    def __init__(self, message: str, *, status: int | None, retried: bool, attempts: int) -> None:
        super().__init__(message)
        self.status = status
        self.retried = retried
        self.attempts = attempts


def post_json(
    client: httpx.Client,
    url: str,
    payload: Any,
    *,
    service: str,
    policy: RetryPolicy,
    headers: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """POST ``payload`` as JSON and return the decoded JSON answer, retrying as the policy says.

    Raises :class:`CallFailed` on a 4xx that is not worth retrying, on an answer that is not JSON, or once
    the attempts are spent.
    """
    body = orjson.dumps(payload)
    send_headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    path = httpx.URL(url).path
    last_error = "no attempt made"
    last_status: int | None = None
    for attempt in range(1, policy.attempts + 1):
        try:
            response = client.post(url, content=body, headers=send_headers, timeout=policy.timeout_s)
        except httpx.TimeoutException:
            last_error, last_status = f"timed out after {policy.timeout_s:g}s", None
        except httpx.TransportError as exc:
            last_error, last_status = f"could not connect ({type(exc).__name__})", None
        else:
            status = response.status_code
            if 200 <= status < 300:
                try:
                    return orjson.loads(response.content)
                except orjson.JSONDecodeError:
                    raise CallFailed(
                        f"{service} answered {status} with a body that is not JSON",
                        status=status, retried=attempt > 1, attempts=attempt,
                    ) from None
            if 400 <= status < 500 and status not in _RETRYABLE_4XX:
                raise CallFailed(
                    f"{service} refused the request: HTTP {status} {_short_reason(response)}",
                    status=status, retried=attempt > 1, attempts=attempt,
                )
            last_error, last_status = f"HTTP {status}", status
        if attempt < policy.attempts:
            wait = policy.delay(attempt)
            log.warning("%s %s failed (%s), attempt %d of %d; retrying in %.2fs",
                        service, path, last_error, attempt, policy.attempts, wait)
            sleep(wait)
    log.error("%s %s failed after %d attempts: %s", service, path, policy.attempts, last_error)
    raise CallFailed(
        f"{service} unavailable after {policy.attempts} attempts: {last_error}",
        status=last_status, retried=policy.attempts > 1, attempts=policy.attempts,
    )


def _short_reason(response: httpx.Response) -> str:
    """The error message the service gave, if it gave a short one (JSON ``error``/``message``/``detail``)."""
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.reason_phrase
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str):
                return value[:200]
    return response.reason_phrase


def bearer(api_key: str | None) -> dict[str, str]:
    """An Authorization header for ``api_key`` (none when there is no key)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
