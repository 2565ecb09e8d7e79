"""Erasure against a real ``growth serve`` over real HTTP, on the real clock (CONTRACT.md 10): the API process
writes the tombstone, the worker (a child process) applies it; and ``growth users erase`` from another process."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.e2e.serve import ServeProcess, WorkerProcess, clean_env, daytime_zone, growth_command, serving
from tests.erasure_traces import traces
from tests.pg_cluster import PgCluster
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

ADMIN_KEY = "e2e-erasure-admin"
WRITE_KEY = "e2e-erasure-write"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}
USER = "erase-e2e-fan"
EMAIL = "fan.erase@example.test"
PUSH = "push-erase-e2e-3k"


def calls(user: str, email: str, n: int) -> list[dict[str, Any]]:
    """A fan of a listing whose price drops: a push goes out to them at once (a message counted in KPIs)."""
    return [
        {"type": "identify", "userId": user, "anonymousId": f"device-{user}",
         "traits": {"email": email, "push_token": PUSH, "timezone": daytime_zone(),
                    "consent": {"push": True, "email": True}}},
        {"type": "track", "userId": user, "event": "favorite_added", "properties": {"listing_id": f"L{n}"}},
        {"type": "track", "userId": f"shop{n}", "event": "listing_created",
         "properties": {"listing_id": f"L{n}", "title": "Fuji", "price": 10000, "category": "cameras"}},
        {"type": "track", "userId": f"shop{n}", "event": "listing_price_changed",
         "properties": {"listing_id": f"L{n}", "old_price": 10000, "new_price": 7000}},
    ]


def growth(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*growth_command(), *args], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=120, check=False)


def test_erase_through_the_api_and_the_cli_against_a_running_engine(tmp_path: Path) -> None:
    db = tmp_path / "growth.db"
    url = f"sqlite:///{db}"
    env = clean_env(api_key=ADMIN_KEY, write_keys=WRITE_KEY)
    with serving(tmp_path, ["--db", url], env) as server, httpx.Client(base_url=server.base_url, timeout=30) as http:
        def pushes(user: str) -> list[dict[str, Any]]:
            return list(http.get("/v1/messages", params={"userId": user, "flow": "price_drop"},
                                 headers=ADMIN).json()["messages"])

        assert http.post("/v1/batch", json={"batch": calls(USER, EMAIL, 1)}, headers=WRITE).status_code == 200
        [push] = wait_until(lambda: pushes(USER), what="the price-drop push")
        def price_drop_kpis() -> dict[str, Any]:
            return dict(http.get("/v1/kpis", params={"flow": "price_drop"}, headers=ADMIN).json())

        kpis = wait_until(lambda: price_drop_kpis()["overall"]["sent"] and price_drop_kpis(), what="the push counted")

        answer = http.delete(f"/v1/users/{USER}", headers=ADMIN)
        assert answer.status_code == 202, answer.text
        token = answer.json()["erasureToken"]
        assert http.get(f"/v1/users/{USER}", headers=ADMIN).status_code == 404, "404 at once"
        assert http.get(f"/v1/users/{USER}/export", headers=ADMIN).status_code == 404
        assert http.delete(f"/v1/users/{USER}", headers=ADMIN).json()["error"]["code"] == "not_found"
        # The worker, in its own process, applies the tombstone: the push stays, under the token, without content.
        [kept] = wait_until(lambda: pushes(token), what="the worker applied the tombstone")
        assert kept["id"] == push["id"] and kept["body"] == "" and pushes(USER) == []
        assert price_drop_kpis() == kpis

        # The same id again starts a new profile: no consent, no memberships, no history.
        again = {"userId": USER, "traits": {"name": "New person"}}
        assert http.post("/v1/identify", json=again, headers=WRITE).status_code == 200
        view = http.get(f"/v1/users/{USER}", headers=ADMIN).json()
        assert view["traits"] == {"name": "New person"} and view["segments"] == []
        export = http.get(f"/v1/users/{USER}/export", headers=ADMIN).json()
        assert [e["name"] for e in export["events"]] == ["identify"]
        assert export["consentHistory"] == [] and export["favorites"] == [] and export["messages"] == []

        # growth users erase, from another process, while the engine runs.
        other, other_email = "erase-e2e-cli", "cli.erase@example.test"
        assert http.post("/v1/batch", json={"batch": calls(other, other_email, 2)}, headers=WRITE).status_code == 200
        wait_until(lambda: pushes(other), what="the second user's push")
        done = growth(tmp_path, "users", "erase", other, "--db", url)
        assert done.returncode == 0, done.stderr
        assert "erased:" in done.stdout and other_email not in done.stdout
        assert http.get(f"/v1/users/{other}", headers=ADMIN).status_code == 404
        wait_until(lambda: not pushes(other), what="the worker applied the CLI's tombstone")
        twice = growth(tmp_path, "users", "erase", other, "--db", url)
        assert twice.returncode != 0 and "no user" in twice.stderr

        wait_until(lambda: all(s["behind"] == 0 for s in http.get("/v1/pipeline", headers=ADMIN).json()["stages"]),
                   what="the pipeline caught up")
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                assert traces(conn, [EMAIL, other_email, PUSH, f"device-{USER}", other]) == []
        finally:
            engine.dispose()
    assert EMAIL not in server.output() and other_email not in server.output()


@pytest.mark.postgres
def test_on_postgres_a_worker_that_starts_after_the_erasure_rebuilds_nothing(pg_cluster: PgCluster,
                                                                             tmp_path: Path) -> None:
    """``growth serve --api-only`` takes the calls and the erasure while no worker runs (the worker is far behind:
    the user's events, the tombstone and the same id's new life all wait in the log); a ``growth worker`` started
    afterwards leaves nothing of the old life and only the new one under the id."""
    url = pg_cluster.new_database()
    env = clean_env(api_key=ADMIN_KEY, write_keys=WRITE_KEY)
    api = ServeProcess(tmp_path, ["--db", url, "--api-only"], env, name="api")
    worker: WorkerProcess | None = None
    try:
        api.wait_ready()
        http = httpx.Client(base_url=api.base_url, timeout=30)
        assert http.post("/v1/batch", json={"batch": calls(USER, EMAIL, 1)}, headers=WRITE).status_code == 200
        answer = http.delete(f"/v1/users/{USER}", headers=ADMIN)
        assert answer.status_code == 202, answer.text
        token = answer.json()["erasureToken"]
        assert http.get(f"/v1/users/{USER}", headers=ADMIN).status_code == 404
        again = {"userId": USER, "traits": {"name": "New person", "consent": {"sms": True}}}
        assert http.post("/v1/identify", json=again, headers=WRITE).status_code == 200

        worker = WorkerProcess(tmp_path, ["--db", url], env)
        wait_until(lambda: all(s["behind"] == 0 for s in http.get("/v1/pipeline", headers=ADMIN).json()["stages"]),
                   timeout_s=90, what="the worker caught up")
        export = http.get(f"/v1/users/{USER}/export", headers=ADMIN).json()
        assert [(c["channel"], c["granted"]) for c in export["consentHistory"]] == [("sms", True)]
        assert export["messages"] == [] and export["favorites"] == [] and export["flowRuns"] == []
        assert [e["name"] for e in export["events"]] == ["identify"]
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as conn:
                assert traces(conn, [EMAIL, PUSH, f"device-{USER}"]) == []
                audit = conn.execute(sa.text("SELECT channel, source, detail FROM consent_changes WHERE user_id = "
                                             ":token"), {"token": token}).all()
                assert [tuple(r) for r in audit] == [("all", "erasure", "api")]
                assert conn.execute(sa.text("SELECT count(*) FROM events WHERE user_id = :u AND type = 'command'"),
                                    {"u": USER}).scalar_one() == 0, "the tombstone keeps only the token"
        finally:
            engine.dispose()
        http.close()
    finally:
        if worker is not None:
            print(f"--- worker (exit {worker.stop()}) ---\n{worker.output()}")
        print(f"--- api (exit {api.stop()}) ---\n{api.output()}")
