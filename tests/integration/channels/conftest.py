"""Fixtures for the provider integration tests: a local HTTP server and a record of backoff sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pytest_httpserver import HTTPServer


@pytest.fixture(scope="module")
def running_server() -> Iterator[HTTPServer]:
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def server(running_server: HTTPServer) -> Iterator[HTTPServer]:
    running_server.clear()
    yield running_server
    running_server.clear()


@pytest.fixture
def sleeps() -> list[float]:
    """Pass ``sleeps.append`` as a provider's sleep: backoff is recorded, not waited."""
    return []


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One HTTP client for the module's providers (making a client loads the CA bundle: slow)."""
    with httpx.Client() as client:
        yield client
