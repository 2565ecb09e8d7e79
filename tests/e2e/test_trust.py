"""Trust, against a real ``growth serve`` over real HTTP (issue 14; CONTRACT.md 3.3, 9, 10): the data folder kept
private, dashboard sessions that hold across a restart and end at logout, ``Secure`` behind an HTTPS proxy, failed
sign-ins limited, the inbox opened by a user's own token only, a user's export, unsubscribe links on the served
port, and a browser SDK from another origin."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import stat
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.serve import START, clean_env, serving

pytestmark = pytest.mark.e2e

ADMIN_KEY = "e2e-trust-admin"
WRITE_KEY = "e2e-trust-write"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}
MANUAL = ["--clock", "manual", "--start", START]
SECRET = "e2e-app-backend-secret"
SHOP = "https://shop.example"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def token(user_id: str) -> dict[str, str]:
    return {"X-Growth-User-Token": hmac.new(SECRET.encode(), user_id.encode(), hashlib.sha256).hexdigest()}


def test_the_data_folder_is_private_and_sessions_outlive_a_restart(tmp_path: Path) -> None:
    env = clean_env(api_key=ADMIN_KEY, write_keys=WRITE_KEY, login_attempts="3")
    with serving(tmp_path, MANUAL, env, "first") as server, httpx.Client(base_url=server.base_url) as http:
        assert http.post("/v1/track", json={"userId": "u1", "event": "app_opened"}, headers=WRITE).status_code == 200
        data = tmp_path / "data"
        assert mode(data) == 0o700
        files = {p.name: mode(p) for p in data.iterdir()}
        assert {"growth.db", "growth.db-wal", "growth.db-shm", "unsubscribe.secret"} <= set(files), files
        assert all(m == 0o600 for m in files.values()), files

        # Behind a TLS proxy on this host (trusted by default), the cookie is Secure.
        proxied = http.post("/dashboard/login", data={"key": ADMIN_KEY}, headers={"X-Forwarded-Proto": "https"})
        assert proxied.status_code == 303 and "secure" in proxied.headers["set-cookie"].lower().split("; ")
        login = http.post("/dashboard/login", data={"key": ADMIN_KEY})
        assert login.status_code == 303 and "secure" not in login.headers["set-cookie"].lower().split("; ")
        cookie = login.cookies["growth_session"]
        for _ in range(3):
            assert http.post("/dashboard/login", data={"key": "guess"}).status_code == 401
        limited = http.post("/dashboard/login", data={"key": ADMIN_KEY})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0

    with serving(tmp_path, MANUAL, env, "second") as server, httpx.Client(base_url=server.base_url) as http:
        http.cookies.set("growth_session", cookie)
        assert http.get("/dashboard/segments").status_code == 200  # the session outlived the restart
        assert http.post("/dashboard/logout").status_code == 303
        http.cookies.set("growth_session", cookie)
        page = http.get("/dashboard/segments")
        assert page.status_code == 303 and page.headers["location"].startswith("/dashboard/login")


def test_inbox_tokens_export_and_links_on_the_served_port(tmp_path: Path) -> None:
    env = clean_env(api_key=ADMIN_KEY, write_keys=WRITE_KEY, user_token_secret=SECRET)
    db = tmp_path / "growth.db"
    with serving(tmp_path, ["--db", f"sqlite:///{db}", *MANUAL], env) as server, \
            httpx.Client(base_url=server.base_url, timeout=30) as http:
        for user in ("s1", "s2"):
            batch = {"batch": [
                {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.test", "is_seller": True,
                                                                "phone": "081-234-5678",
                                                                "consent": {"in_app": True, "email": True}}},
                {"type": "track", "userId": user, "event": "seller_registered"},
            ]}
            assert http.post("/v1/batch", json=batch, headers=WRITE).json()["accepted"] == 2
        assert http.post("/v1/clock/advance", json={"by": "P3D"}, headers=ADMIN).status_code == 200

        inbox = http.get("/v1/users/s1/inbox", headers=token("s1"))
        assert inbox.status_code == 200, inbox.text
        [message] = inbox.json()["messages"]
        assert http.post(f"/v1/users/s1/inbox/{message['id']}/read", headers=token("s1")).json()["status"] == "opened"
        assert http.get("/v1/users/s2/inbox", headers=token("s1")).status_code == 403
        assert http.get("/v1/users/s1/inbox", headers=WRITE).status_code == 403

        export = http.get("/v1/users/s1/export", headers=ADMIN)
        assert export.status_code == 200, export.text
        data = export.json()
        assert data["profile"]["traits"]["phone"] == "+66812345678"
        assert [e["name"] for e in data["events"]] == ["identify", "seller_registered"]
        assert {m["channel"] for m in data["messages"]} >= {"in_app", "email"}
        assert any(c["channel"] == "email" and c["granted"] for c in data["consentHistory"])
        assert http.get("/v1/users/s1/export", headers=WRITE).status_code == 403

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT data FROM messages WHERE channel = 'email' AND user_id = 's1'").fetchall()
    links = [orjson.loads(row[0]).get("unsubscribe_url") for row in rows]
    assert links and all(link.startswith(f"{server.base_url}/u/") for link in links), (links, server.base_url)


def test_a_browser_sdk_from_another_origin(tmp_path: Path) -> None:
    env = clean_env(api_key=ADMIN_KEY, write_keys=WRITE_KEY, cors_origins=f"{SHOP}, https://other.example")
    with serving(tmp_path, ["--db", f"sqlite:///{tmp_path / 'growth.db'}", *MANUAL], env) as server, \
            httpx.Client(base_url=server.base_url) as http:
        preflight = http.options("/v1/batch", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST",
                                                       "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == SHOP
        call = {"type": "track", "anonymousId": "a-1", "event": "item_viewed", "writeKey": WRITE_KEY,
                "properties": {"listing_id": "L1"}}
        sent = http.post("/v1/t", content=orjson.dumps(call), headers={"Content-Type": "text/plain", "Origin": SHOP})
        assert sent.status_code == 200 and sent.json()["accepted"] == 1
        assert sent.headers["access-control-allow-origin"] == SHOP
        refused = http.options("/v1/t", headers={"Origin": "https://evil.example",
                                                 "Access-Control-Request-Method": "POST"})
        assert refused.status_code == 403
