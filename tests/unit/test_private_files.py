"""The data folder is 0700 and the engine's files in it 0600: the SQLite database, its WAL and shared memory,
the key files and secrets (CONTRACT.md 9)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from growthengine.bootstrap import build_engine
from growthengine.private_files import private_dir, private_file, write_private
from growthengine.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what a shell usually has: files 0644, folders 0755 unless the engine says otherwise
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_engine_keeps_its_data_private(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "data"
    engine = build_engine(Settings(db_url=f"sqlite:///{data}/growth.db", data_dir=data))
    try:
        engine.ingest([{"type": "identify", "userId": "u1", "traits": {"email": "nok@example.com"}}])
        files = {p.name: mode(p) for p in data.iterdir()}
        assert {"growth.db", "growth.db-wal", "growth.db-shm", "unsubscribe.secret"} <= set(files), files
        assert all(m == 0o600 for m in files.values()), files
        assert mode(data) == 0o700 and mode(data.parent) == 0o700
    finally:
        engine.close()


def test_an_existing_data_folder_and_database_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "growth.db").touch(mode=0o644)
    engine = build_engine(Settings(db_url=f"sqlite:///{data}/growth.db", data_dir=data))
    engine.close()
    assert mode(data) == 0o700 and mode(data / "growth.db") == 0o600


def test_a_folder_the_engine_only_writes_into_is_left_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    private_dir(shared)
    assert mode(shared) == 0o755
    private_dir(shared, tighten=True)
    assert mode(shared) == 0o700


def test_private_files_are_0600_from_the_first_byte(tmp_path: Path) -> None:
    target = tmp_path / "key"
    write_private(target, "secret")
    assert target.read_text() == "secret" and mode(target) == 0o600
    loose = tmp_path / "loose"
    loose.write_text("x")
    loose.chmod(0o666)
    private_file(loose)
    assert mode(loose) == 0o600 and loose.read_text() == "x"
