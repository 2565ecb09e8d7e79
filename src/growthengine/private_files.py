"""The engine's own files (the SQLite database and its WAL, key files, secrets) are readable by its user only:
folders it makes are 0700, files 0600 (SQLite gives the WAL and shared-memory files the database file's mode)."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path | str, *, tighten: bool = False) -> Path:
    """``path`` as a folder, made 0700 with any missing parents; with ``tighten``, an existing one is made 0700 too
    (the engine's data folder; never a folder it merely writes into, such as ``/tmp``)."""
    path = Path(path).expanduser()
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for made in missing:  # mkdir's mode passes through the umask, and parents get the default mode
        with contextlib.suppress(OSError):
            made.chmod(DIR_MODE)
    if tighten:
        _restrict(path, DIR_MODE)
    return path


def private_file(path: Path | str) -> Path:
    """``path`` as an existing file of mode 0600 (created empty when missing, tightened when looser)."""
    path = Path(path).expanduser()
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    _restrict(path, FILE_MODE)
    return path


def write_private(path: Path | str, text: str) -> None:
    """Write ``text`` to a file that is 0600 from its first byte."""
    path = private_file(path)
    with path.open("w", encoding="utf-8") as out:
        out.write(text)


def _restrict(path: Path, mode: int) -> None:
    """Take group and other access away from a file or folder of ours (someone else's is left as it is)."""
    with contextlib.suppress(OSError):
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(info.st_mode) & ~0o077 | (mode & 0o700))
