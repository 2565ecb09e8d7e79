"""On SQLite one worker at a time: a file lock beside the database (released by the OS if the process dies)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url


class WorkerLockHeld(RuntimeError):
    """Another worker already runs on this SQLite database."""


def sqlite_lock_path(db_url: str) -> Path | None:
    """The lock file of a SQLite database URL (``None`` for PostgreSQL or an in-memory database)."""
    parsed = make_url(db_url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser().with_suffix(".worker.lock")


class WorkerLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`WorkerLockHeld` at once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkerLockHeld(
                f"another worker already runs on this SQLite database (lock {self.path}); on SQLite one worker "
                "runs at a time: use PostgreSQL for several"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
