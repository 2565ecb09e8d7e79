"""Erasure covers every table that holds user data: a new table with a user column must say how it is erased."""

from __future__ import annotations

from growthengine.storage.erasure_store import ANONYMISED, ERASED, kept_data
from growthengine.storage.schema import metadata
from tests.erasure_traces import text_columns

USER_COLUMNS = {"user_id", "anonymous_id", "seller_id"}


def test_every_table_with_a_user_column_is_erased_or_anonymised() -> None:
    holding = {table.name for table in metadata.sorted_tables if USER_COLUMNS & {c.name for c in table.columns}}
    assert holding, "the schema was read"
    uncovered = holding - set(ERASED) - set(ANONYMISED)
    assert not uncovered, f"tables with a user column that erasure does not cover: {sorted(uncovered)}"
    assert not set(ERASED) & set(ANONYMISED)
    unknown = (set(ERASED) | set(ANONYMISED)) - {t.name for t in metadata.sorted_tables}
    assert not unknown, f"listed tables that do not exist: {sorted(unknown)}"
    assert {"profiles", "events", "segment_members", "flow_runs", "consent_changes"} <= set(ERASED)
    assert {"messages", "kpi_messages"} <= set(ANONYMISED)


def test_the_scan_reads_every_text_column() -> None:
    columns = {(t.name, c.name) for t, c in text_columns()}
    assert {("events", "payload"), ("timers", "payload"), ("outbox", "payload"), ("messages", "body"),
            ("flow_runs", "context"), ("profiles", "traits")} <= columns


def test_an_anonymised_message_keeps_its_progress_and_loses_what_names_the_person() -> None:
    data = {"template": "cart_push", "opened_us": 5, "unsubscribe_url": "https://x/u/abc", "gate": "no opt-in",
            "error": "bounced nok@example.com", "experiment": {"key": "k", "variant": "a"}, "provider": "outbox",
            "send_time": {"detail": "Asia/Bangkok"}}
    assert kept_data(data) == {"template": "cart_push", "opened_us": 5, "experiment": {"key": "k", "variant": "a"},
                               "provider": "outbox", "erased": True}
