"""The config API (CONTRACT.md 11): one segment, flow or template at a time, validated as the config file is, kept
as versions with who and when; the flows with their steps and live counts."""

from __future__ import annotations

from typing import Any

import pytest

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from growthengine.storage.config_store import ConfigStore
from tests.unit.api_client import ADMIN, WRITE, api_client, assert_error

pytestmark = pytest.mark.anyio

BIG_SPENDERS = {"name": "Big spenders", "refresh": "realtime", "event": "purchase", "sum": {"of": "amount", "gt": 100}}
WELCOME_SMS = {"channel": "sms", "description": "test",
               "th": {"body": "สวัสดี {{ name|default('คุณลูกค้า') }} ยินดีต้อนรับ"},
               "en": {"body": "Hello {{ name|default('there') }}, welcome"}}
BIG_FLOW = {"name": "Thank big spenders", "trigger": {"segment_entered": "big_spenders"},
            "steps": [{"name": "thanks", "send": {"channel": "sms", "kind": "marketing", "template": "welcome_sms"}}]}


async def test_put_get_delete_and_history(any_engine: Engine) -> None:
    engine = any_engine
    async with api_client(engine) as client:
        shipped = await client.get("/v1/config/segments/high_ltv", headers=ADMIN)
        assert shipped.status_code == 200 and shipped.json()["name"] == "💎 High LTV"
        assert (await client.get("/v1/config/templates/cart_nudge_push", headers=ADMIN)).json()["channel"] == "push"
        assert (await client.get("/v1/config/flows/cart_abandonment", headers=ADMIN)).json()["trigger"] == \
            {"segment_entered": "cart_abandoners"}
        assert_error(await client.get("/v1/config/segments/nope", headers=ADMIN), 404, "not_found")

        put = await client.put("/v1/config/segments/big_spenders", json=BIG_SPENDERS, headers=ADMIN)
        assert put.status_code == 200, put.text
        change = put.json()
        assert (change["kind"], change["key"], change["version"], change["action"]) == \
            ("segment", "big_spenders", 1, "create")
        assert change["changedBy"] == "env:admin" and change["before"] is None and change["after"] == BIG_SPENDERS
        assert (await client.get("/v1/config/segments/big_spenders", headers=ADMIN)).json() == BIG_SPENDERS
        assert "big_spenders" in {s["key"] for s in (await client.get("/v1/segments", headers=ADMIN)).json()}

        assert (await client.put("/v1/config/templates/welcome_sms", json=WELCOME_SMS, headers=ADMIN)).status_code \
            == 200
        assert (await client.put("/v1/config/flows/big_thanks", json=BIG_FLOW, headers=ADMIN)).status_code == 200
        flows = {f["key"]: f for f in (await client.get("/v1/flows", headers=ADMIN)).json()["flows"]}
        assert flows["big_thanks"]["trigger"] == "enters big_spenders"
        assert flows["big_thanks"]["steps"] == [{"name": "thanks", "does": "marketing sms: welcome_sms",
                                                  "waiting": 0, "messages": {}}]
        assert "cart_abandonment" in flows

        # A template a flow sends cannot go; the flow can, then the template.
        refused = assert_error(await client.delete("/v1/config/templates/welcome_sms", headers=ADMIN), 422)
        assert any("welcome_sms" in d["message"] or "welcome_sms" in d["path"] for d in refused["details"])
        assert (await client.delete("/v1/config/flows/big_thanks", headers=ADMIN)).json()["action"] == "delete"
        assert (await client.delete("/v1/config/templates/welcome_sms", headers=ADMIN)).status_code == 200
        assert_error(await client.get("/v1/config/templates/welcome_sms", headers=ADMIN), 404)
        assert "big_thanks" not in {f["key"] for f in (await client.get("/v1/flows", headers=ADMIN)).json()["flows"]}

        edited = {**BIG_SPENDERS, "name": "Bigger spenders"}
        second = (await client.put("/v1/config/segments/big_spenders", json=edited, headers=ADMIN)).json()
        assert (second["version"], second["action"], second["before"]) == (2, "update", BIG_SPENDERS)

        history = (await client.get("/v1/config/history", headers=ADMIN)).json()
        assert [(c["kind"], c["key"], c["action"]) for c in history["changes"]] == [
            ("segment", "big_spenders", "update"), ("template", "welcome_sms", "delete"),
            ("flow", "big_thanks", "delete"), ("flow", "big_thanks", "create"),
            ("template", "welcome_sms", "create"), ("segment", "big_spenders", "create")]
        assert history["next"] is None
        page = (await client.get("/v1/config/history?limit=2&kind=segment", headers=ADMIN)).json()
        assert [c["version"] for c in page["changes"]] == [2, 1] and page["next"] is None
        page = (await client.get("/v1/config/history?limit=1", headers=ADMIN)).json()
        older = (await client.get(f"/v1/config/history?limit=1&before={page['next']}", headers=ADMIN)).json()
        assert older["changes"][0]["key"] == "welcome_sms"


async def test_a_refused_change_lists_every_problem_and_stores_nothing(engine: Engine) -> None:
    bad = {"name": "Bad", "refresh": "sometimes", "event": "purchase", "count": {"gt": "many"}}
    async with api_client(engine) as client:
        error = assert_error(await client.put("/v1/config/segments/bad", json=bad, headers=ADMIN), 422,
                             "invalid_config")
        # Both problems of the one segment, not only the first.
        assert [d["path"] for d in error["details"]] == ["segments.bad.refresh", "segments.bad.count.gt"]
        assert "sometimes" in error["details"][0]["message"] and "many" in error["details"][1]["message"]
        flow = {"name": "x", "trigger": {"segment_entered": "nowhere"},
                "steps": [{"send": {"channel": "push", "template": "no_such_template"}}]}
        error = assert_error(await client.put("/v1/config/flows/x", json=flow, headers=ADMIN), 422)
        assert error["details"][0]["path"] == "flows.x.trigger.segment_entered", error
        assert "nowhere" in error["details"][0]["message"]
        assert_error(await client.put("/v1/config/segments/bad", content=b"[1]", headers=ADMIN), 400)
        assert_error(await client.put("/v1/config/segments/bad", content=b"{", headers=ADMIN), 400)
        assert_error(await client.put("/v1/config/segments/bad%20key", json=BIG_SPENDERS, headers=ADMIN), 400)
        assert_error(await client.put("/v1/config/segments/x", json=BIG_SPENDERS, headers=WRITE), 403)
        assert_error(await client.get("/v1/config/history", headers=WRITE), 403)
        assert (await client.get("/v1/config/history", headers=ADMIN)).json() == {"changes": [], "next": None}


async def test_store_on_both_databases(any_engine: Engine, clock: ManualClock) -> None:
    with any_engine.store.transaction() as tx:
        store = ConfigStore(tx.conn)
        assert store.stamp() == 0 and store.current() == []
        first = store.record("segment", "a", {"x": 1}, before=None, changed_by="k", now_us=5)
        store.record("segment", "a", None, before={"x": 1}, changed_by="k", now_us=6)
        store.record("flow", "a", {"y": "ไทย"}, before=None, changed_by="k", now_us=7)
        current: dict[tuple[str, str], Any] = {(v.kind, v.key): (v.version, v.deleted, v.body)
                                               for v in store.current()}
        assert current == {("segment", "a"): (2, True, None), ("flow", "a"): (1, False, {"y": "ไทย"})}
        assert store.stamp() > first.id
        assert [v.version for v in store.history(kind="segment")] == [2, 1]
        assert store.last_by("segment", "a", "k") is not None and store.last_by("segment", "a", "z") is None


async def test_segment_preview_on_stored_history_saves_nothing(engine: Engine) -> None:
    for n, amount in enumerate((50, 500, 5000)):
        engine.ingest([{"type": "track", "userId": f"u{n}", "event": "purchase",
                        "properties": {"order_id": f"O{n}", "amount": amount, "listing_ids": ["L"]}}])
    async with api_client(engine) as client:
        draft = {**BIG_SPENDERS, "sum": {"of": "amount", "gt": 100}}
        preview = (await client.post("/v1/config/segments/big_spenders/preview", json=draft, headers=ADMIN)).json()
        assert (preview["size"], preview["exact"], preview["sampled"], preview["users"]) == (2, True, 3, 3), preview
        assert [m["userId"] for m in preview["sample"]] == ["u1", "u2"]
        assert preview["sample"][0]["reason"] == "sum(purchase.amount, lifetime) = 500 > 100"
        saved = (await client.post("/v1/config/segments/high_ltv/preview", json={}, headers=ADMIN)).json()
        assert saved["size"] == 0 and saved["sample"] == []
        assert_error(await client.post("/v1/config/segments/big_spenders/preview", json={}, headers=ADMIN), 404)
        bad = assert_error(await client.post("/v1/config/segments/big_spenders/preview",
                                             json={**draft, "refresh": "never"}, headers=ADMIN), 422)
        assert bad["details"][0]["path"] == "segments.big_spenders.refresh"
        assert (await client.get("/v1/config/history", headers=ADMIN)).json()["changes"] == []
        assert_error(await client.get("/v1/config/segments/big_spenders", headers=ADMIN), 404)


def test_segment_preview_on_a_sample_scales_its_size(engine: Engine, clock: ManualClock) -> None:
    from growthengine.clock import to_us
    from growthengine.segments.draft_preview import preview_segment

    engine.ingest([{"type": "track", "userId": f"u{n}", "event": "purchase",
                    "properties": {"order_id": f"O{n}", "amount": 6000 if n % 2 else 10, "listing_ids": ["L"]}}
                   for n in range(10)])
    with engine.store.read() as tx:
        preview = preview_segment(engine.segments.segments, "high_ltv", tx, clock, to_us(clock.now()),
                                  "Asia/Bangkok", sample_users=4, shown=1)
    assert (preview.exact, preview.sampled, preview.users, preview.size) == (False, 4, 10, 5)
    assert preview.sample == [{"userId": "u1", "reason": "sum(purchase.amount, lifetime) = 6000 > 5000"}]


ODD_BODIES = [
    ("flows", {"trigger": {"segment_entered": {}}, "steps": [{}]}),
    ("flows", {"trigger": {"segment_entered": []}, "steps": [{"send": {"channel": {}, "template": []}}]}),
    ("flows", {"trigger": {"event": {}}, "steps": [{"send": {"channel": "push", "template": {}}}]}),
    ("flows", {"trigger": {"schedule": []}, "steps": [{"wait": {"for": {}}}]}),
    ("segments", {"event": {}, "count": []}),
    ("segments", {"segment": {}}),
    ("segments", {"trait": {}, "eq": {}}),
    ("segments", {"pattern": []}),
    ("templates", {"channel": {}, "th": []}),
    ("templates", {"channel": "push", "th": {"title": "{{", "body": "x"}}),
    ("templates", {"channel": "push", "variants": {"a": {"when": [{}], "th": {"title": "a", "body": "b"}}}}),
]


async def test_values_of_unexpected_types_are_refused_with_422_never_5xx(engine: Engine) -> None:
    async with api_client(engine) as client:
        for section, body in ODD_BODIES:
            error = assert_error(await client.put(f"/v1/config/{section}/odd", json=body, headers=ADMIN), 422)
            assert all(d["path"].startswith(f"{section}.odd") for d in error["details"]), (body, error)
        both = {"channel": "push", "th": {"title": "a", "body": "b"}, "defaults": [], "optional": {}}
        error = assert_error(await client.put("/v1/config/templates/odd", json=both, headers=ADMIN), 422)
        assert [d["path"] for d in error["details"]] == ["templates.odd.defaults", "templates.odd.optional"]
        assert (await client.get("/v1/config/history", headers=ADMIN)).json()["changes"] == []
