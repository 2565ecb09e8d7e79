"""The dashboard in a real browser (Playwright driving Debian's chromium) against a real ``growth serve``.

Events go in through the API on the manual clock so that segments fill and flows send; then the test signs in
through the login form, opens every page, checks the figures against ``/v1/kpis`` and ``/v1/segments``, checks
that Thai text is drawn with a Thai font, and saves a screenshot of each page under ``test-artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.serve import START, ServeProcess, clean_env, serving

pytestmark = pytest.mark.e2e

ADMIN_KEY = "e2e-dashboard-admin"
WRITE_KEY = "e2e-dashboard-write"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
THAI_FONTS = ("Loma", "Garuda", "Kinnari", "Norasi", "Sawasdee", "Tlwg", "Umpush", "Waree", "Purisa", "Laksaman",
              "Kinnari", "Noto Sans Thai", "Noto Serif Thai", "Sarabun")
CONSENT = {"push": True, "email": True, "in_app": True}


def feed(http: httpx.Client) -> None:
    """Twelve shoppers abandon carts (nudge pushes at T+1h), four of them also window-shop (evening pushes)."""
    batch: list[dict[str, Any]] = []
    for n in range(12):
        user = f"shopper-{n}"
        batch.append({"type": "identify", "userId": user, "messageId": f"id-{n}",
                      "traits": {"email": f"{user}@example.test", "push_token": f"tok-{n}", "language": "th",
                                 "consent": CONSENT}})
        batch.append({"type": "track", "userId": user, "event": "add_to_cart", "messageId": f"cart-{n}",
                      "properties": {"listing_id": f"L{n}", "title": "กล้องฟิล์ม Olympus", "price": 4500 + n,
                                     "stock": 2}})
    batch.append({"type": "identify", "userId": "no-consent", "messageId": "id-nc",  # held back: no push opt-in
                  "traits": {"push_token": "tok-nc", "consent": {"push": False, "email": True}}})
    batch.append({"type": "track", "userId": "no-consent", "event": "add_to_cart", "messageId": "cart-nc",
                  "properties": {"listing_id": "L-nc", "title": "เลนส์", "price": 990, "stock": 9}})
    for n in range(4):
        user = f"looker-{n}"
        batch.append({"type": "identify", "userId": user, "messageId": f"lid-{n}",
                      "traits": {"push_token": f"ltok-{n}", "consent": CONSENT}})
        batch += [{"type": "track", "userId": user, "event": "item_viewed", "messageId": f"v-{n}-{i}",
                   "properties": {"listing_id": f"V{i}", "category": "cameras", "price": 900}} for i in range(21)]
    response = http.post("/v1/batch", json={"batch": batch}, headers=WRITE)
    assert response.status_code == 200 and not response.json()["rejected"], response.text
    advanced = http.post("/v1/clock/advance", json={"by": "PT1H"}, headers=ADMIN)
    assert advanced.status_code == 200, advanced.text
    sent = http.get("/v1/messages", params={"status": "sent", "limit": 100}, headers=ADMIN).json()["messages"]
    assert len(sent) >= 10, sent
    feedback: list[dict[str, Any]] = []
    for i, message in enumerate(sent[:6]):
        event = "message_clicked" if i < 2 else "message_opened"
        feedback.append({"type": "track", "userId": message["userId"], "event": event,
                         "properties": {"message_id": message["id"]}})
    feedback.append({"type": "track", "userId": sent[0]["userId"], "event": "purchase",
                     "properties": {"order_id": "o-1", "amount": 4500, "listing_ids": ["L-other"]}})
    feedback.append({"type": "track", "userId": sent[1]["userId"], "event": "unsubscribed",
                     "properties": {"channel": "push"}})
    assert http.post("/v1/batch", json={"batch": feedback}, headers=WRITE).json()["accepted"] == len(feedback)
    assert http.post("/v1/clock/advance", json={"by": "PT10H"}, headers=ADMIN).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("dashboard")
    env = clean_env(api_key=ADMIN_KEY, write_keys=WRITE_KEY)
    args = ["--db", f"sqlite:///{tmp / 'growth.db'}", "--clock", "manual", "--start", START]
    with serving(tmp, args, env, "dashboard") as running, httpx.Client(base_url=running.base_url, timeout=30) as http:
        feed(http)
        yield running


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def thai_fonts_used(page: Any, selector: str) -> dict[str, int]:
    """The platform fonts chromium drew the element's text with (DevTools protocol), and glyphs from each."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return {f["familyName"]: int(f["glyphCount"]) for f in fonts}


def ints(page: Any, selector: str, attribute: str) -> dict[str, int]:
    """``data-key`` to an integer attribute, for each element the selector finds."""
    return {el.get_attribute("data-key") or "": int(el.get_attribute(attribute))
            for el in page.query_selector_all(selector)}


def test_the_dashboard_in_a_browser(server: ServeProcess, browser: Any) -> None:
    base = server.base_url
    with httpx.Client(base_url=base, timeout=30) as http:
        kpis = http.get("/v1/kpis", headers=ADMIN).json()
        segments = {s["key"]: s["size"] for s in http.get("/v1/segments", headers=ADMIN).json()}
        sent_api = http.get("/v1/messages", params={"status": "sent", "limit": 50}, headers=ADMIN).json()
    overall = kpis["overall"]
    assert overall["sent"] >= 10 and overall["opened"] >= 6 and overall["clicked"] == 2

    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="th-TH")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    # Signing in: a wrong key is refused, the admin key opens the overview.
    page.goto(f"{base}/")
    assert "/dashboard/login" in page.url
    page.fill("#key", WRITE_KEY)
    page.click("#login-submit")
    assert page.query_selector("#login-error") is not None
    shot(page, "0-login")
    problems.clear()  # the refused sign-in answered 401, as it should
    page.fill("#key", ADMIN_KEY)
    page.click("#login-submit")
    page.wait_for_selector("#benchmarks")
    cookie = next(c for c in context.cookies() if c["name"] == "growth_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # Overview: the counts and the benchmark cards are the API's.
    assert page.inner_text("h1") == "ภาพรวม"
    for counter in ("decided", "sent", "opened", "clicked", "converted", "suppressed", "unsubscribed"):
        assert int(page.inner_text(f'#totals td[data-count="{counter}"]').replace(",", "")) == overall[counter]
    for metric, mark in overall["benchmarks"].items():
        card = page.query_selector(f'.kpi[data-metric="{metric}"]')
        assert card is not None
        value = card.get_attribute("data-value")
        assert (float(value) if value else None) == pytest.approx(mark["value"]) if mark["value"] is not None \
            else value == ""
        expected = "good" if mark["ok"] is True else "bad" if mark["ok"] is False else "none"
        assert expected in (card.get_attribute("class") or "")
    flow_rows = {r["flow"]: r["sent"] for r in kpis["by_flow"]}
    assert ints(page, "#by-flow tr[data-key]", "data-sent") == flow_rows
    page.wait_for_selector(".chart[data-drawn='1']")
    fonts = thai_fonts_used(page, "h1")
    assert any(name.startswith(THAI_FONTS) and n >= 5 for name, n in fonts.items()), fonts
    heading = page.query_selector("h1")
    assert heading is not None and heading.bounding_box()["width"] > 40
    shot(page, "1-overview")

    # English and back.
    page.click("#lang-switch")
    assert page.inner_text("h1") == "Overview"
    page.click("#lang-switch")
    assert page.inner_text("h1") == "ภาพรวม"

    # Segments: sizes now are /v1/segments'.
    page.click('nav a[data-page="segments"]')
    page.wait_for_selector("#segments")
    shown = {row.get_attribute("data-key"): int(row.query_selector("td.size").get_attribute("data-size"))
             for row in page.query_selector_all("#segments tr[data-key]")}
    assert shown == segments and shown["cart_abandoners"] == 13 and shown["window_shoppers"] == 4
    page.wait_for_selector("#segment-chart[data-drawn='1']")
    page.click("#snapshot")
    page.wait_for_selector("#segments")
    shot(page, "2-segments")

    # Flows: each send step's funnel counts are the API's.
    page.click('nav a[data-page="flows"]')
    page.wait_for_selector('section[data-flow="cart_abandonment"]')
    for row in kpis["by_step"]:
        cells = page.query_selector(f'section[data-flow="{row["flow"]}"] tr[data-step="{row["step"]}"]')
        assert cells is not None, row
        for counter in ("sent", "opened", "clicked"):
            cell = cells.query_selector(f'td[data-count="{counter}"]')
            assert cell is not None and int(cell.inner_text().replace(",", "")) == row[counter]
    shot(page, "3-flows")

    # Message explorer: the filter gives the ledger's messages, each with its reason.
    page.click('nav a[data-page="messages"]')
    page.select_option('select[name="status"]', "sent")
    page.click("#message-filters button")
    page.wait_for_selector("#messages")
    ids = [r.get_attribute("data-id") for r in page.query_selector_all("#messages tr[data-id]")]
    assert sorted(ids) == sorted(m["id"] for m in sent_api["messages"])
    shot(page, "4-messages")
    page.goto(f"{base}/dashboard/messages?status=suppressed")
    suppressed = page.query_selector_all('#messages tr[data-status="suppressed"]')
    assert len(suppressed) == overall["suppressed"] >= 1
    reasons = [row.query_selector_all("td code")[1].inner_text() for row in suppressed]
    assert "consent" in reasons and all(reasons), reasons
    assert "opt-in" in suppressed[reasons.index("consent")].query_selector("td.why").inner_text()
    shot(page, "4-messages-suppressed")

    # Experiments: no flow of this feed runs one (no step has variants), and the page says so.
    assert not [r for r in kpis["by_variant"] if r["variant"]], kpis["by_variant"]
    page.click('nav a[data-page="experiments"]')
    page.wait_for_selector("#no-experiments")
    assert page.query_selector_all(".verdict") == []
    shot(page, "5-experiments")

    page.click('nav a[data-page="send_times"]')
    page.wait_for_selector("#heatmap[data-drawn='1']")
    assert int(page.inner_text("#open-total").replace(",", "")) == overall["opened"]
    shot(page, "6-send-times")

    # Signing out ends the session.
    page.click("header form button")
    page.goto(f"{base}/dashboard/flows")
    assert "/dashboard/login" in page.url
    assert problems == [], problems
    context.close()


def test_pages_need_a_session_and_plotly_is_served_from_the_package(server: ServeProcess) -> None:
    import plotly

    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for path in ("/", "/dashboard/segments", "/dashboard/flows", "/dashboard/messages",
                     "/dashboard/experiments", "/dashboard/send-times"):
            response = http.get(path)
            assert response.status_code == 303 and response.headers["location"].startswith("/dashboard/login")
        http.cookies.set("growth_session", "djEuOTk5OTk5OTk5OTk5OTk5OTk5OS54.forged")
        assert http.get("/").status_code == 303
        http.cookies.clear()
        bundle = http.get("/dashboard/static/plotly.min.js")
        shipped = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        assert bundle.status_code == 200 and bundle.content == shipped.read_bytes()
        assert http.get("/dashboard/static/../../pyproject.toml").status_code == 404
        login = http.post("/dashboard/login", data={"key": ADMIN_KEY, "next": "//evil.example/"})
        assert login.status_code == 303 and login.headers["location"] == "/"
