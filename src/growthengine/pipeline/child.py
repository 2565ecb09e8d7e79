"""``growth serve`` runs its worker as a child process (``growth worker`` on the same database and config file), so
the API keeps a core of its own. The child ends with its parent, whatever way the parent ends.

Ingestion wakes the child when it stores something (``SIGUSR1``, which ``growth worker`` answers by looking at the
log at once): without it an idle child looked only every ``IDLE_WAIT_S`` (50 ms), which was most of an event's
time to its segment change at a steady 1,000 events a second."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from growthengine.settings import Settings

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
WAKE_SIGNAL = signal.SIGUSR1
"""What ``growth worker`` takes as "new work in the log": it looks at once instead of at its next idle poll."""


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def listen_for_signals(work_arrived: threading.Event, on_stop: Callable[[], None]) -> None:
    """:data:`WAKE_SIGNAL` sets ``work_arrived``; ``SIGTERM`` and ``SIGINT`` call ``on_stop`` (call from the main
    thread).

    The handlers take no lock: a Python signal handler runs in the main thread between two of its instructions,
    possibly while that thread holds the lock of the very event it would set (in ``wait``, ``set`` or ``clear``),
    which deadlocked a worker told to stop (it then never stopped). A handler only notes a stop in a plain flag and
    writes a byte to a pipe; a thread of its own reads the pipe, sets the event and calls ``on_stop``.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    stopping = [False]

    def handle(signum: int, _frame: object) -> None:
        if signum != WAKE_SIGNAL:
            stopping[0] = True  # seen by the reader even if the pipe is too full for this byte
        try:
            os.write(write_end, b"w")
        except BlockingIOError:
            pass  # the pipe is full of bytes not yet passed on: the reader wakes anyway

    def pass_on() -> None:
        stopped = False
        while os.read(read_end, 4096):
            work_arrived.set()
            if stopping[0] and not stopped:
                stopped = True
                on_stop()

    threading.Thread(target=pass_on, name="growth-signals", daemon=True).start()
    for signum in (WAKE_SIGNAL, *STOP_SIGNALS):
        signal.signal(signum, handle)


def _without_password(db_url: str) -> tuple[str, str | None]:
    """The database URL without its password, and the password (``None`` when it has none)."""
    parsed = make_url(db_url)
    if parsed.password is None:
        return db_url, None
    return parsed._replace(password=None).render_as_string(hide_password=False), str(parsed.password)


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
    wake: threading.Event | None = None
    """Set by the parent's ingestion after each commit (``Engine.work_arrived``): passed on to the child."""
    restarts: int = 0
    _ready_pid: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._supervise, name="growth-worker-supervisor", daemon=True)
        self._watch.start()
        if self.wake is not None:
            self._waker = threading.Thread(target=self._pass_wakes_on, args=(self.wake,), name="growth-worker-wake",
                                           daemon=True)
            self._waker.start()

    @classmethod
    def start(cls, settings: Settings, wake: threading.Event | None = None) -> ChildWorker:
        return cls(settings, cls._spawn(settings), wake)

    def _pass_wakes_on(self, wake: threading.Event) -> None:
        """Each time ingestion has stored something, signal the child (wakes that come while one is passed on
        are passed on as one)."""
        while not self._stop.is_set():
            if not wake.wait(0.5):
                continue
            wake.clear()
            proc = self.proc
            if proc.poll() is None and self._handles_wake(proc.pid):
                try:
                    os.kill(proc.pid, WAKE_SIGNAL)
                except ProcessLookupError:
                    pass

    def _handles_wake(self, pid: int) -> bool:
        """Whether the child has set its handler for the wake signal yet (until then the signal's default action
        would end it): read once from ``/proc/PID/status`` (``SigCgt``), then remembered for that process."""
        if self._ready_pid == pid:
            return True
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
        if int(caught, 16) >> (WAKE_SIGNAL - 1) & 1:
            self._ready_pid = pid
            return True
        return False

    @staticmethod
    def _spawn(settings: Settings) -> subprocess.Popen[bytes]:
        db_url, password = _without_password(settings.db_url)
        command = [sys.executable, "-m", "growthengine.cli", "worker", "--db", db_url]
        if settings.config_file is not None:
            command += ["--config", str(settings.config_file.resolve())]
        # The same data folder (the unsubscribe links' secret) and the same served address (public links).
        env = {**os.environ, "GROWTH_DATA_DIR": str(settings.data_dir.resolve()), "GROWTH_HOST": settings.host,
               "GROWTH_PORT": str(settings.port)}
        if password is not None:
            env["PGPASSWORD"] = password  # libpq's own variable: not on a command line every user can read
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
