"""The real ``growth serve`` process over real HTTP (CONTRACT.md 2, 3, 3.1, 3.4), on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import gzip
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.serve import KEY_IN_OUTPUT, START, ServeProcess, clean_env, serving
from tests.e2e.test_crash_safety_stages import _children
from tests.pg_cluster import PgCluster
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

ADMIN_KEY = "e2e-admin-key"
WRITE_KEY = "e2e-write-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}
MANUAL = ["--clock", "manual", "--start", START]


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def rudderstack_batch(user: str) -> bytes:
    """What RudderStack's SDKs post: gzip, no ``timestamp``, client times with ``sentAt``, extra fields."""
    body = {"sentAt": "2026-01-05T05:00:00.000Z", "batch": [
        {"type": "identify", "userId": user, "anonymousId": f"anon-{user}", "messageId": f"{user}-1",
         "traits": {"email": f"{user}@example.com", "consent": {"push": True}},
         "context": {"library": {"name": "rudder-sdk-node"}}, "integrations": {"All": True},
         "originalTimestamp": "2026-01-05T04:58:00.000Z", "sentAt": "2026-01-05T05:00:00.000Z"},
        {"type": "track", "userId": user, "event": "add_to_cart", "messageId": f"{user}-2",
         "properties": {"listing_id": "L1", "price": 450, "stock": 2}, "_metadata": {"nodeVersion": "20"},
         "originalTimestamp": "2026-01-05T04:59:00.000Z"},
        {"type": "page", "userId": user, "name": "Cart", "messageId": f"{user}-3",
         "originalTimestamp": "2026-01-05T04:57:00.000Z"},
    ]}
    return gzip.compress(orjson.dumps(body))


def ingest_and_read_back(http: httpx.Client, user: str) -> dict[str, Any]:
    headers = {**basic(WRITE_KEY), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = http.post("/v1/batch", content=rudderstack_batch(user), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    again = http.post("/v1/batch", content=rudderstack_batch(user), headers=headers)
    assert again.json() == {"accepted": 0, "duplicates": 3, "rejected": []}
    response = http.post("/v1/identify", json={"userId": user, "traits": {"name": "Somchai", "language": "th"}},
                         headers=WRITE)
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    user_view = http.get(f"/v1/users/{user}", headers=ADMIN)
    assert user_view.status_code == 200, user_view.text
    body: dict[str, Any] = user_view.json()
    assert body["traits"] == {"email": f"{user}@example.com", "consent": {"push": True}, "name": "Somchai",
                              "language": "th"}
    # originalTimestamp 04:59 client time, sent at 05:00 client time, received at 02:00: the event was at 01:59.
    assert body["computed"]["last_active"] == "2026-01-05T01:59:00Z"
    return body


def assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_serve_answers_over_http(tmp_path: Path) -> None:
    env = clean_env(api_key=ADMIN_KEY, write_keys=f"other-key, {WRITE_KEY}")
    args = ["--db", f"sqlite:///{tmp_path / 'growth.db'}", *MANUAL]
    with serving(tmp_path, args, env) as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        openapi = http.get("/openapi.json")
        assert openapi.status_code == 200
        assert {"/v1/batch", "/v1/identify", "/v1/track", "/v1/clock/advance"} <= set(openapi.json()["paths"])
        assert http.get("/v1/clock", headers=ADMIN).json() == {"now": "2026-01-05T02:00:00Z", "mode": "manual"}

        ingest_and_read_back(http, "u1")

        assert_error(http.get("/v1/users/u1"), 401)
        assert_error(http.get("/v1/users/u1", headers={"Authorization": "Bearer nope"}), 401)
        assert_error(http.get("/v1/users/u1", headers=basic(WRITE_KEY)), 403)
        assert_error(http.get("/v1/users/nobody", headers=ADMIN), 404)
        assert_error(http.get("/v1/nothing-here", headers=ADMIN), 404)
        assert_error(http.post("/v1/batch", content=b"{oops", headers=WRITE), 400)
        assert_error(http.post("/v1/batch", content=b"\x1f\x8b\x08broken",
                               headers={**WRITE, "Content-Encoding": "gzip"}), 400)
        assert_error(http.post("/v1/batch", json={"batch": [{}] * 1001}, headers=WRITE), 413)
        future = {"userId": "u1", "event": "app_opened", "timestamp": "2026-01-05T10:00:00+07:00"}
        assert_error(http.post("/v1/track", json=future, headers=WRITE), 400)

        advanced = http.post("/v1/clock/advance", json={"by": "PT1H"}, headers=ADMIN)
        assert advanced.status_code == 200, advanced.text
        assert advanced.json()["now"] == "2026-01-05T03:00:00Z"
        assert http.post("/v1/track", json=future, headers=WRITE).json()["accepted"] == 1
        to = http.post("/v1/clock/advance", json={"to": "2026-01-06T09:00:00+07:00"}, headers=ADMIN)
        assert to.json()["now"] == "2026-01-06T02:00:00Z"
        assert_error(http.post("/v1/clock/advance", json={"to": START}, headers=ADMIN), 409)  # backwards
        assert http.get("/v1/clock", headers=ADMIN).json()["now"] == "2026-01-06T02:00:00Z"
        assert http.get("/v1/users/u1", headers=ADMIN).json()["computed"]["last_active"] == "2026-01-05T03:00:00Z"
    assert "Traceback" not in server.output()


def test_concurrent_senders_lose_nothing_and_a_restart_keeps_it_all(tmp_path: Path) -> None:
    env = clean_env(api_key=ADMIN_KEY, write_keys=WRITE_KEY)
    args = ["--db", f"sqlite:///{tmp_path / 'growth.db'}", *MANUAL]

    def send(base_url: str, sender: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=base_url, timeout=30) as http:
            for n in range(5):
                batch = {"batch": [{"type": "identify", "userId": f"s{sender}-{n}-{i}", "traits": {"n": i},
                                    "messageId": f"{sender}.{n}.{i}"} for i in range(20)] + [{"type": "track"}]}
                response = http.post("/v1/batch", json=batch, headers=basic(WRITE_KEY))
                statuses.append(response.status_code)
                assert response.json()["accepted"] == 20, response.text
        return statuses

    with serving(tmp_path, args, env, "first") as server, ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [s for result in pool.map(lambda n: send(server.base_url, n), range(8)) for s in result]
        assert statuses == [200] * 40
    with serving(tmp_path, args, env, "second") as server, httpx.Client(base_url=server.base_url) as http:
        for sender in range(8):
            response = http.get(f"/v1/users/s{sender}-4-19", headers=ADMIN)
            assert response.status_code == 200 and response.json()["traits"] == {"n": 19}
        # Resent after the restart: every call is a duplicate.
        batch = {"batch": [{"type": "identify", "userId": "s0-0-0", "messageId": "0.0.0", "traits": {"n": 99}}]}
        assert http.post("/v1/batch", json=batch, headers=WRITE).json()["duplicates"] == 1
        assert http.get("/v1/users/s0-0-0", headers=ADMIN).json()["traits"] == {"n": 0}


def test_without_an_api_key_serve_makes_one_and_prints_it_once(tmp_path: Path) -> None:
    env = clean_env(write_keys=WRITE_KEY)  # no GROWTH_API_KEY; the default database under ./data/
    with serving(tmp_path, MANUAL, env, "first") as server:
        keys = KEY_IN_OUTPUT.findall(server.output())
        assert len(keys) == 1, server.output()
        key = keys[0]
        with httpx.Client(base_url=server.base_url) as http:
            assert http.get("/v1/clock", headers={"Authorization": f"Bearer {key}"}).status_code == 200
            assert_error(http.get("/v1/clock", headers=WRITE), 403)
            response = http.post("/v1/track", json={"userId": "u1", "event": "app_opened"}, headers=basic(WRITE_KEY))
            assert response.json()["accepted"] == 1
    # Kept as a named key ("admin") in the database, hashed: the key itself is nowhere on disk.
    assert (tmp_path / "data" / "growth.db").exists()
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir() if p.is_file())
    assert key.encode() not in stored and hashlib.sha256(key.encode()).hexdigest().encode() in stored

    with serving(tmp_path, MANUAL, env, "second") as server:
        assert KEY_IN_OUTPUT.search(server.output()) is None, server.output()
        assert "shown once" not in server.output()
        with httpx.Client(base_url=server.base_url) as http:
            user = http.get("/v1/users/u1", headers={"Authorization": f"Bearer {key}"})
            assert user.status_code == 200, user.text
            assert_error(http.get("/v1/clock", headers={"Authorization": "Bearer ge_admin_guess"}), 401)


@pytest.mark.postgres
def test_serve_on_postgresql(tmp_path: Path, pg_cluster: PgCluster) -> None:
    env = clean_env(api_key=ADMIN_KEY, write_keys=WRITE_KEY)
    args = ["--db", pg_cluster.new_database(), *MANUAL]
    with serving(tmp_path, args, env) as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        ingest_and_read_back(http, "pg-user")
        # What PostgreSQL cannot store (NUL in text) is refused alone; the rest of the batch is kept.
        batch = {"batch": [{"type": "track", "userId": "pg\u0000user", "event": "x"},
                           {"type": "track", "userId": "pg-user", "event": "app\u0000opened"},
                           {"type": "track", "userId": "pg-user", "event": "ok", "properties": {"n": "\u0000"}}]}
        response = http.post("/v1/batch", json=batch, headers=WRITE)
        assert response.status_code == 200, response.text
        assert [r["index"] for r in response.json()["rejected"]] == [0, 1]
        assert_error(http.get("/v1/users/pg%00user", headers=ADMIN), 400)
        anon = {"anonymousId": "visitor-1", "event": "item_viewed", "properties": {"listing_id": "L2"}}
        assert http.post("/v1/track", json=anon, headers=WRITE).json()["accepted"] == 1
        merge = {"userId": "pg-user", "anonymousId": "visitor-1", "traits": {"province": "Chiang Mai"}}
        assert http.post("/v1/identify", json=merge, headers=WRITE).json()["accepted"] == 1
        assert http.get("/v1/users/pg-user", headers=ADMIN).json()["traits"]["province"] == "Chiang Mai"
        advanced = http.post("/v1/clock/advance", json={"by": "P1D"}, headers=ADMIN)
        assert advanced.json()["now"] == "2026-01-06T02:00:00Z"
    assert "Traceback" not in server.output()


@pytest.mark.postgres
def test_serve_on_postgresql_runs_its_worker_as_a_child_without_the_password_in_sight(
        tmp_path: Path, pg_cluster: PgCluster) -> None:
    """On the real clock ``growth serve`` on PostgreSQL runs its worker as a child process (the API keeps a core
    and an interpreter of its own); the database password goes to the child in its environment, never on its
    command line (which any user of the machine can read). The cluster trusts local connections, so the password
    is not checked, only carried."""
    url = pg_cluster.new_database().replace("postgresql://postgres@", "postgresql://postgres:s3cret-pw@")
    env = clean_env(api_key=ADMIN_KEY, write_keys=WRITE_KEY)
    with serving(tmp_path, ["--db", url], env) as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        [child] = wait_until(lambda: _children(server.proc.pid), what="the worker's child process")
        command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        assert b"worker" in command and not any(b"s3cret-pw" in part for part in command), command
        purchase = {"userId": "big-buyer", "event": "purchase", "properties": {"order_id": "o1", "amount": 6000}}
        assert http.post("/v1/track", json=purchase, headers=WRITE).json()["accepted"] == 1
        # The child, not the API, applies it: the user enters high_ltv.
        wait_until(lambda: "high_ltv" in http.get("/v1/users/big-buyer", headers=ADMIN).json()["segments"],
                   what="the child worker put the buyer in high_ltv")
    output = server.output()
    assert "worker started as child process" in output and "s3cret-pw" not in output
    assert "Traceback" not in output
    assert "Warning" not in output  # the child is started as a package (runpy warned of a module run twice)


def test_a_bad_start_is_one_clear_line_an_exit_and_the_helper_says_so(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, ["--clock", "manual"], clean_env(api_key=ADMIN_KEY), "broken")
    with pytest.raises(AssertionError, match="exited"):
        server.wait_ready()
    assert server.stop() != 0
    output = server.output()
    assert "--start" in output and "error" in output.lower() and "Traceback" not in output
