"""A fan-out's enrolments in pages (``flows/enrol_pages.py``): one command per partition and page of users."""

from __future__ import annotations

from collections import Counter

from growthengine.domain.events import Event
from growthengine.domain.partitions import PARTITIONS, partition_of
from growthengine.flows.enrol_pages import (
    ENROLL_COMMAND,
    ENROLL_PAGE,
    applied_payload,
    enrol_pages,
    named_users,
    page_key,
)
from growthengine.pipeline.runner import BATCH_SIZE, MIN_BATCH


def test_each_user_is_named_once_in_a_page_of_their_partition_keyed_by_that_partition() -> None:
    users = [f"u{n}" for n in range(3_000)] + ["u5", "u17"]  # a repeated user is named once
    commands = enrol_pages(users, 123, {"flow": "price_drop", "entity": "L1", "context": {"x": 1}})
    named = Counter(u for _, _, _, payload in commands for u in payload["users"])
    assert set(named) == set(users) and set(named.values()) == {1}
    for key, name, ts_us, payload in commands:
        assert name == ENROLL_COMMAND and ts_us == 123 and payload["flow"] == "price_drop"
        assert 1 <= len(payload["users"]) <= ENROLL_PAGE
        assert {partition_of(u) for u in payload["users"]} == {partition_of(key)}
        assert key not in users
    assert len(commands) < len(users) / 10
    # within a partition, the users keep their order
    first = [u for u in users[:3_000] if partition_of(u) == 0]
    assert [u for _, _, _, p in commands if partition_of(p["users"][0]) == 0 for u in p["users"]] == first


def test_page_keys_lie_in_their_partition_and_a_page_is_no_larger_than_the_pipelines_bounds_allow() -> None:
    assert [partition_of(page_key(p)) for p in range(PARTITIONS)] == list(range(PARTITIONS))
    assert ENROLL_PAGE * MIN_BATCH <= BATCH_SIZE


def test_a_per_user_command_names_its_user_and_an_applied_page_names_nobody() -> None:
    old = Event("u1", ENROLL_COMMAND, 5, type="command", properties={"flow": "f", "entity": "L"})
    assert named_users(old) == ["u1"] and applied_payload(old) is None
    page = Event(page_key(3), ENROLL_COMMAND, 5, type="command",
                 properties={"flow": "f", "entity": "L", "trigger_us": 5, "users": ["a", "b"], "context": {}})
    assert named_users(page) == ["a", "b"]
    applied = applied_payload(page)
    assert applied == {"flow": "f", "entity": "L", "trigger_us": 5, "users": [], "named": 2}
    assert named_users(Event(page_key(3), ENROLL_COMMAND, 5, type="command", properties=applied)) == []
