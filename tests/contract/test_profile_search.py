"""The dashboard's user search (``ProfileStore.search``) on SQLite and PostgreSQL: by id, by id prefix, by email
whatever its case; LIKE's wildcards in the text are taken literally; anonymous profiles are not listed."""

from __future__ import annotations

from growthengine.engine import Engine


def test_users_are_found_by_id_prefix_and_email(any_engine: Engine) -> None:
    result = any_engine.ingest([
        {"type": "identify", "userId": "ann", "traits": {"email": "Ann.Lee@Example.test"}},
        {"type": "identify", "userId": "anna_b", "traits": {"email": "anna_b@example.test"}},
        {"type": "identify", "userId": "annXb", "traits": {"email": "annaxb@example.test"}},
        {"type": "identify", "userId": "bob", "traits": {"email": "bob@example.test", "note": "ann.lee@example.test!"}},
        {"type": "track", "anonymousId": "anon-ann", "event": "item_viewed", "properties": {}},
    ])
    assert not result.rejected

    def found(text: str) -> list[str]:
        with any_engine.store.read() as tx:
            return [p.user_id for p in tx.profiles.search(text)]

    assert found("ann") == ["ann", "annXb", "anna_b"] or found("ann") == ["ann", "anna_b", "annXb"]
    assert found("anna_") == ["anna_b"]  # "_" is not a wildcard: annXb does not match
    assert found("ann.lee@example.TEST") == ["ann"]  # the email trait only, not another trait holding it
    assert found("anna_b@example.test") == ["anna_b"]
    assert found("%") == [] and found("anon") == []
