"""Segment's own browser SDK (analytics.js 2.0, ``@segment/analytics-next`` from npm, pinned in ``js/``) in Chromium,
on a shop page of another origin, sends identify, track and page to a real ``growth serve`` (CONTRACT.md 9): its
short routes, its write key in a ``text/plain`` body, CORS, and a Thai national phone number stored as E.164.

``make test`` installs the SDK (``npm ci`` in ``tests/e2e/js``); the test bundles it with esbuild into one file."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.serve import clean_env, free_port, serving

pytestmark = pytest.mark.e2e

JS = Path(__file__).parent / "js"
ADMIN = {"Authorization": "Bearer e2e-ajs-admin"}
WRITE_KEY = "e2e-ajs-write"

PAGE = """<!doctype html><html lang="th"><head><meta charset="utf-8"><title>JaiKod</title>
<script src="analytics.js"></script></head><body><h1>ร้านค้า</h1></body></html>"""

SEND = """async ([writeKey, apiHost]) => {
  const segment = {apiKey: writeKey, apiHost, protocol: 'http'}
  const [analytics] = await window.AnalyticsBrowser.load(
    {writeKey, cdnSettings: {integrations: {'Segment.io': segment}}},  // no settings fetched from Segment's CDN
    {integrations: {'Segment.io': segment}})
  await analytics.identify('u-ajs', {email: 'nok@example.com', phone: '081-234-5678', consent: {email: true}})
  await analytics.track('item_viewed', {listing_id: 'L1', price: 4500})
  await analytics.page('Home', {path: '/'})
  return analytics.user().anonymousId()
}"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    esbuild = JS / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        pytest.fail("the browser SDKs are not installed: run `make test` (npm ci in tests/e2e/js)")
    site = tmp_path_factory.mktemp("shop")
    subprocess.run([str(esbuild), "entry.js", "--bundle", "--format=iife", f"--outfile={site / 'analytics.js'}",
                    "--log-level=warning"], cwd=JS, check=True, timeout=120)
    (site / "index.html").write_text(PAGE, encoding="utf-8")
    return site


@pytest.fixture
def shop(bundle: Path) -> Iterator[str]:
    """The shop's pages on an origin of their own (another port, another host name)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(bundle))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_analytics_js_sends_identify_track_and_page_from_another_origin(tmp_path: Path, shop: str,
                                                                         browser: Any) -> None:
    # The real clock: the SDK stamps its calls with the browser's time.
    env = clean_env(api_key=ADMIN["Authorization"].removeprefix("Bearer "), write_keys=WRITE_KEY, cors_origins=shop)
    with serving(tmp_path, ["--db", f"sqlite:///{tmp_path / 'growth.db'}"], env) as server:
        page = browser.new_page()
        answers: list[tuple[str, int, str | None]] = []
        page.on("response", lambda r: answers.append((r.url, r.status, r.request.headers.get("content-type")))
                if "/v1/" in r.url else None)
        try:
            page.goto(f"{shop}/index.html")
            anonymous_id = page.evaluate(SEND, [WRITE_KEY, server.base_url.removeprefix("http://") + "/v1"])
        finally:
            page.close()

        base = server.base_url
        assert [(url.removeprefix(base), status) for url, status, _ in answers] == [
            ("/v1/i", 200), ("/v1/t", 200), ("/v1/p", 200)], answers
        assert all(kind is not None and kind.startswith("text/plain") for _, _, kind in answers)
        with httpx.Client(base_url=base, headers=ADMIN) as http_client:
            user = http_client.get("/v1/users/u-ajs").json()
            assert user["traits"] == {"email": "nok@example.com", "phone": "+66812345678", "consent": {"email": True}}
            events = http_client.get("/v1/users/u-ajs/export").json()["events"]
        assert [(e["type"], e["name"]) for e in events] == [("identify", "identify"), ("track", "item_viewed"),
                                                            ("page", "page")]
        assert all(e["anonymousId"] == anonymous_id for e in events)
        assert events[1]["properties"] == {"listing_id": "L1", "price": 4500}
        assert events[2]["extra"]["name"] == "Home"
        assert all("writeKey" not in e.get("extra", {}) for e in events)
