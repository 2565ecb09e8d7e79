"""A consistent copy of a SQLite database while the engine writes to it (SQLite's online backup API).

The copy is taken in one step, a snapshot of one moment: in WAL mode the engine's writers go on meanwhile (a copy
taken in small steps would start over each time another connection writes). It is written to a temporary file
beside the target and renamed, so the target is never half a database; the file is readable by its owner only.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def backup_sqlite(source: Path, target: Path) -> int:
    """Copy ``source`` to ``target``; returns the size of the copy in bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(source, timeout=30)  # it only reads; a read-only open fails on a WAL file at rest
    try:
        fd = os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        os.close(fd)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
    finally:
        src.close()
    os.replace(partial, target)
    return target.stat().st_size
