"""Waiting on conditions, never on the clock: a deadline bounds the wait, the condition ends it.

A test that sleeps a fixed time and hopes the other side has finished, or asserts that a call took under some
number of seconds, passes or fails with the machine's load. These helpers make such tests wait for what they need.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from werkzeug import Request, Response

T = TypeVar("T")

DEADLINE_S = 30.0
POLL_S = 0.02


def wait_until(condition: Callable[[], T], *, timeout_s: float = DEADLINE_S, what: str = "the condition",
               poll_s: float = POLL_S) -> T:
    """Poll ``condition`` until it gives a truthy value (returned); fail with ``what`` at the deadline. ``poll_s``
    spaces polls that cost the other side work (HTTP reads of a busy server)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(poll_s)


class StalledHandler:
    """A pytest-httpserver handler that holds every request until :meth:`release`: a server slower than any client
    timeout, on any machine. Release it before the test ends (its requests are logged once they are answered)."""

    def __init__(self, answer: Response, *, longest_s: float = DEADLINE_S) -> None:
        self.answer = answer
        self.longest_s = longest_s
        self.entered = 0
        self._released = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, _request: Request) -> Response:
        with self._lock:
            self.entered += 1
        self._released.wait(self.longest_s)
        return self.answer

    def release(self) -> None:
        self._released.set()


def run_together(target: Callable[[int], object], count: int, *, timeout_s: float = 120.0) -> None:
    """Run ``target(0)`` ... ``target(count - 1)`` in threads of their own, and wait for all of them (races)."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout_s)
