"""``growth keys create|list|revoke`` and ``growth db upgrade|current|backup`` (CONTRACT.md 9)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from typer.testing import CliRunner, Result

from growthengine.cli.app import app
from growthengine.cli.options import CliError
from growthengine.keys import active_named_keys
from growthengine.storage import database
from growthengine.storage.revisions import head_revision
from growthengine.storage.unit_of_work import Store
from tests.pg_cluster import PgCluster


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def refused(result: Result, *words: str) -> str:
    assert isinstance(result.exception, CliError), (result.output, result.exception)
    message = str(result.exception)
    for word in words:
        assert word in message, message
    return message


def test_keys_create_list_revoke(sqlite_url: str) -> None:
    made = run("keys", "create", "ios-app", "--db", sqlite_url)
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("ge_write_") and len(key) > 30
    admin = run("keys", "create", "ops", "--role", "admin", "--db", sqlite_url).stdout.strip().splitlines()[-1]
    assert admin.startswith("ge_admin_")
    store = Store.open(sqlite_url)
    try:
        active = {info.name: info.role for info in active_named_keys(store).values()}
        assert active == {"ios-app": "write", "ops": "admin"}
        with store.transaction() as tx:
            kept = str(tx.state.prefixed("api_key:"))
        assert key not in kept and admin not in kept, "only hashes are kept"
    finally:
        store.close()
    listed = run("keys", "list", "--db", sqlite_url)
    assert "ios-app" in listed.stdout and f"…{key[-4:]}" in listed.stdout and "active" in listed.stdout
    refused(run("keys", "create", "ios-app", "--db", sqlite_url), "is active")
    refused(run("keys", "create", "bad name!", "--db", sqlite_url), "a key name")
    refused(run("keys", "create", "x", "--role", "root", "--db", sqlite_url), "admin or write")
    refused(run("keys", "revoke", "ops", "--db", sqlite_url), "last named admin key", "--force")
    revoked = run("keys", "revoke", "ios-app", "--db", sqlite_url)
    assert revoked.exit_code == 0 and "revoked write key 'ios-app'" in revoked.stdout
    refused(run("keys", "revoke", "ios-app", "--db", sqlite_url), "already revoked")
    refused(run("keys", "revoke", "nobody", "--db", sqlite_url), "no key named")
    assert "revoked" in run("keys", "list", "--db", sqlite_url).stdout
    # A revoked name may be used again for a new key.
    assert run("keys", "create", "ios-app", "--db", sqlite_url).exit_code == 0


def test_db_current_and_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    refused(run("db", "current", "--db", url), "no database at")
    upgraded = run("db", "upgrade", "--db", url)
    assert upgraded.exit_code == 0 and f"upgraded an empty database -> {head_revision()}" in upgraded.stdout
    assert f"already at {head_revision()}" in run("db", "upgrade", "--db", url).stdout
    current = run("db", "current", "--db", url)
    assert current.exit_code == 0 and current.stdout.startswith(f"{head_revision()} (head")

    older = f"sqlite:///{tmp_path / 'older.db'}"
    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).parent / "migrations"))
    engine = sa.create_engine(older)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    engine.dispose()
    assert "0005 (behind" in run("db", "current", "--db", older).stdout
    assert f"upgraded 0005 -> {head_revision()}" in run("db", "upgrade", "--db", older).stdout


def test_db_backup_copies_a_live_database(sqlite_url: str, tmp_path: Path) -> None:
    source = Path(sqlite_url.removeprefix("sqlite:///"))
    writer = sqlite3.connect(source)  # a write in progress, in the write-ahead log, while the copy is taken
    writer.execute("INSERT INTO engine_state (key, value) VALUES ('probe', '1')")
    writer.commit()
    target = tmp_path / "backups" / "growth-copy.db"
    done = run("db", "backup", str(target), "--db", sqlite_url)
    assert done.exit_code == 0, done.output
    assert "backed up" in done.stdout and target.exists()
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT value FROM engine_state WHERE key = 'probe'").fetchone() == ("1",)
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    writer.close()
    refused(run("db", "backup", str(target), "--db", sqlite_url), "exists", "--force")
    assert run("db", "backup", str(target), "--force", "--db", sqlite_url).exit_code == 0


def test_db_backup_on_postgresql_points_to_pg_dump() -> None:
    refused(run("db", "backup", "x.dump", "--db", "postgresql://u@localhost/growth"), "pg_dump")


def test_read_commands_say_nothing_but_their_answer(sqlite_url: str) -> None:
    result = run("segments", "list", "--db", sqlite_url)
    assert result.exit_code == 0
    assert "alembic" not in result.output and "INFO" not in result.output


@pytest.mark.postgres
def test_keys_and_db_on_postgresql(pg_cluster: PgCluster) -> None:
    url = pg_cluster.new_database()
    assert run("db", "upgrade", "--db", url).exit_code == 0
    assert run("db", "current", "--db", url).stdout.startswith(head_revision())
    key = run("keys", "create", "worker-1", "--role", "admin", "--db", url).stdout.strip().splitlines()[-1]
    assert key.startswith("ge_admin_")
    store = Store.open(url)
    try:
        assert [info.name for info in active_named_keys(store).values()] == ["worker-1"]
    finally:
        store.close()
    assert run("keys", "revoke", "worker-1", "--force", "--db", url).exit_code == 0
