"""``growth serve`` on SQLite runs its worker as a child process (``growth worker`` on the same database and config
file), so the API keeps a core of its own. The child ends with its parent, whatever way the parent ends."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

from growthengine.settings import Settings

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child before exec (Linux)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class ChildWorker:
    """The child process, started again if it dies (a supervisor thread); stopped with ``shutdown``."""

    settings: Settings
    proc: subprocess.Popen[bytes]
    restarts: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._supervise, name="growth-worker-supervisor", daemon=True)
        self._watch.start()

    @classmethod
    def start(cls, settings: Settings) -> ChildWorker:
        return cls(settings, cls._spawn(settings))

    @staticmethod
    def _spawn(settings: Settings) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "growthengine.cli.app", "worker", "--db", settings.db_url]
        if settings.config_file is not None:
            command += ["--config", str(settings.config_file.resolve())]
        # The same data folder (the unsubscribe links' secret) and the same served address (public links).
        env = {**os.environ, "GROWTH_DATA_DIR": str(settings.data_dir.resolve()), "GROWTH_HOST": settings.host,
               "GROWTH_PORT": str(settings.port)}
        if "public_url" in settings.model_fields_set:
            env["GROWTH_PUBLIC_URL"] = settings.public_url
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,  # noqa: S603 (our own program)
                                preexec_fn=_die_with_parent)
        log.info("worker started as child process %d", proc.pid)
        return proc

    def _supervise(self) -> None:
        """A worker that died (killed, crashed) is started again; what it had not committed it does again."""
        while not self._stop.wait(0.5):
            code = self.proc.poll()
            if code is None or self._stop.is_set():
                continue
            self.restarts += 1
            log.warning("the worker process exited with status %s; starting it again", code)
            self._stop.wait(min(5.0, 0.5 * self.restarts))
            if not self._stop.is_set():
                self.proc = self._spawn(self.settings)

    def shutdown(self, timeout_s: float = 20.0) -> None:
        self._stop.set()
        self._watch.join(timeout=5)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
